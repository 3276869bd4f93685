"""robustbench_lite: attack, verify and scan PyTorch models against YAML-defined threat models.

Usage::

    import robustbench_lite as rbl

    model = rbl.load_model("zoo:digits-cnn")
    x, y = rbl.load_data("digits", n=200)
    result = rbl.create_attack("pgd", steps=40)(model, x, y, "linf:0.1")
    print(result.robust_accuracy)

Importing this package imports nothing heavy: each public name loads its module (and torch) on
first use; z3 and foolbox are loaded on demand.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below load on first use (PEP 562), so importing the package is cheap
    from robustbench_lite.attack import Attack as Attack
    from robustbench_lite.attack import AttackOutput as AttackOutput
    from robustbench_lite.attack import AttackResult as AttackResult
    from robustbench_lite.data import load_data as load_data
    from robustbench_lite.defense import Defense as Defense
    from robustbench_lite.defense import Detection as Detection
    from robustbench_lite.defense import Detector as Detector
    from robustbench_lite.errors import CheckpointError as CheckpointError
    from robustbench_lite.errors import DataError as DataError
    from robustbench_lite.errors import ModelOutputError as ModelOutputError
    from robustbench_lite.errors import RegistryError as RegistryError
    from robustbench_lite.errors import RobustbenchLiteError as RobustbenchLiteError
    from robustbench_lite.errors import SuiteError as SuiteError
    from robustbench_lite.errors import ThreatSpecError as ThreatSpecError
    from robustbench_lite.errors import UnsupportedLayerError as UnsupportedLayerError
    from robustbench_lite.errors import UnsupportedThreatError as UnsupportedThreatError
    from robustbench_lite.loading import load_model as load_model
    from robustbench_lite.model import Model as Model
    from robustbench_lite.registry import Registry as Registry
    from robustbench_lite.registry import create_attack as create_attack
    from robustbench_lite.registry import create_defense as create_defense
    from robustbench_lite.registry import create_detector as create_detector
    from robustbench_lite.registry import create_verifier as create_verifier
    from robustbench_lite.registry import list_attacks as list_attacks
    from robustbench_lite.registry import list_defenses as list_defenses
    from robustbench_lite.registry import list_detectors as list_detectors
    from robustbench_lite.registry import list_verifiers as list_verifiers
    from robustbench_lite.registry import register_attack as register_attack
    from robustbench_lite.registry import register_defense as register_defense
    from robustbench_lite.registry import register_detector as register_detector
    from robustbench_lite.registry import register_verifier as register_verifier
    from robustbench_lite.report import CheckResult as CheckResult
    from robustbench_lite.report import Report as Report
    from robustbench_lite.runner import run_suite as run_suite
    from robustbench_lite.suite import Suite as Suite
    from robustbench_lite.suite import load_suite as load_suite
    from robustbench_lite.threat import ThreatModel as ThreatModel
    from robustbench_lite.types import Goal as Goal
    from robustbench_lite.types import Inputs as Inputs
    from robustbench_lite.types import Norm as Norm
    from robustbench_lite.types import Status as Status
    from robustbench_lite.verifier import VerificationResult as VerificationResult
    from robustbench_lite.verifier import Verifier as Verifier

#: Public name -> the module that defines it.
_LAZY = {
    "Attack": "robustbench_lite.attack",
    "AttackOutput": "robustbench_lite.attack",
    "AttackResult": "robustbench_lite.attack",
    "load_data": "robustbench_lite.data",
    "Defense": "robustbench_lite.defense",
    "Detection": "robustbench_lite.defense",
    "Detector": "robustbench_lite.defense",
    "CheckpointError": "robustbench_lite.errors",
    "DataError": "robustbench_lite.errors",
    "ModelOutputError": "robustbench_lite.errors",
    "RegistryError": "robustbench_lite.errors",
    "RobustbenchLiteError": "robustbench_lite.errors",
    "SuiteError": "robustbench_lite.errors",
    "ThreatSpecError": "robustbench_lite.errors",
    "UnsupportedLayerError": "robustbench_lite.errors",
    "UnsupportedThreatError": "robustbench_lite.errors",
    "load_model": "robustbench_lite.loading",
    "Model": "robustbench_lite.model",
    "Registry": "robustbench_lite.registry",
    "create_attack": "robustbench_lite.registry",
    "create_defense": "robustbench_lite.registry",
    "create_detector": "robustbench_lite.registry",
    "create_verifier": "robustbench_lite.registry",
    "list_attacks": "robustbench_lite.registry",
    "list_defenses": "robustbench_lite.registry",
    "list_detectors": "robustbench_lite.registry",
    "list_verifiers": "robustbench_lite.registry",
    "register_attack": "robustbench_lite.registry",
    "register_defense": "robustbench_lite.registry",
    "register_detector": "robustbench_lite.registry",
    "register_verifier": "robustbench_lite.registry",
    "CheckResult": "robustbench_lite.report",
    "Report": "robustbench_lite.report",
    "run_suite": "robustbench_lite.runner",
    "Suite": "robustbench_lite.suite",
    "load_suite": "robustbench_lite.suite",
    "ThreatModel": "robustbench_lite.threat",
    "Goal": "robustbench_lite.types",
    "Inputs": "robustbench_lite.types",
    "Norm": "robustbench_lite.types",
    "Status": "robustbench_lite.types",
    "VerificationResult": "robustbench_lite.verifier",
    "Verifier": "robustbench_lite.verifier",
}

__version__ = "0.1.0"

__all__ = [
    "Attack", "AttackOutput", "AttackResult", "CheckResult", "CheckpointError", "DataError",
    "Defense", "Detection", "Detector", "Goal", "Inputs", "Model", "ModelOutputError", "Norm",
    "Registry", "RegistryError", "Report", "RobustbenchLiteError", "Status", "SuiteError",
    "ThreatModel", "ThreatSpecError", "UnsupportedLayerError", "UnsupportedThreatError",
    "VerificationResult", "Verifier", "__version__", "create_attack", "create_defense",
    "create_detector", "create_verifier", "list_attacks", "list_defenses", "list_detectors",
    "list_verifiers", "load_data", "load_model", "register_attack", "register_defense",
    "register_detector", "register_verifier", "zoo", "run_suite", "load_suite", "Suite",
]


def __getattr__(name: str) -> object:
    """Public names (and ``rbl.zoo``) are imported on first use, then cached in the module."""
    import importlib

    if name == "zoo":
        return importlib.import_module("robustbench_lite.zoo")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'robustbench_lite' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "zoo"})

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

from robustbench_lite.core.version import __version__

if TYPE_CHECKING:  # the names below load on first use (PEP 562), so importing the package is cheap
    from robustbench_lite.core.attack import Attack as Attack
    from robustbench_lite.core.attack import AttackOutput as AttackOutput
    from robustbench_lite.core.attack import AttackResult as AttackResult
    from robustbench_lite.core.defense import Defense as Defense
    from robustbench_lite.core.defense import Detection as Detection
    from robustbench_lite.core.defense import Detector as Detector
    from robustbench_lite.core.errors import CheckpointError as CheckpointError
    from robustbench_lite.core.errors import DataError as DataError
    from robustbench_lite.core.errors import ModelOutputError as ModelOutputError
    from robustbench_lite.core.errors import RegistryError as RegistryError
    from robustbench_lite.core.errors import RobustbenchLiteError as RobustbenchLiteError
    from robustbench_lite.core.errors import SuiteError as SuiteError
    from robustbench_lite.core.errors import ThreatSpecError as ThreatSpecError
    from robustbench_lite.core.errors import UnsupportedLayerError as UnsupportedLayerError
    from robustbench_lite.core.errors import UnsupportedThreatError as UnsupportedThreatError
    from robustbench_lite.core.model import Model as Model
    from robustbench_lite.core.registry import Registry as Registry
    from robustbench_lite.core.registry import create_attack as create_attack
    from robustbench_lite.core.registry import create_defense as create_defense
    from robustbench_lite.core.registry import create_detector as create_detector
    from robustbench_lite.core.registry import create_verifier as create_verifier
    from robustbench_lite.core.registry import list_attacks as list_attacks
    from robustbench_lite.core.registry import list_defenses as list_defenses
    from robustbench_lite.core.registry import list_detectors as list_detectors
    from robustbench_lite.core.registry import list_verifiers as list_verifiers
    from robustbench_lite.core.registry import register_attack as register_attack
    from robustbench_lite.core.registry import register_defense as register_defense
    from robustbench_lite.core.registry import register_detector as register_detector
    from robustbench_lite.core.registry import register_verifier as register_verifier
    from robustbench_lite.core.threat import ThreatModel as ThreatModel
    from robustbench_lite.core.types import Goal as Goal
    from robustbench_lite.core.types import Inputs as Inputs
    from robustbench_lite.core.types import Norm as Norm
    from robustbench_lite.core.types import Status as Status
    from robustbench_lite.core.verifier import VerificationResult as VerificationResult
    from robustbench_lite.core.verifier import Verifier as Verifier
    from robustbench_lite.datasets import load_data as load_data
    from robustbench_lite.datasets import load_inputs as load_inputs
    from robustbench_lite.models.loading import load_model as load_model
    from robustbench_lite.report.model import CheckResult as CheckResult
    from robustbench_lite.report.model import Report as Report
    from robustbench_lite.suite.runner import run_suite as run_suite
    from robustbench_lite.suite.schema import Suite as Suite
    from robustbench_lite.suite.schema import load_suite as load_suite

#: Public name -> the module that defines it.
_LAZY = {
    "Attack": "robustbench_lite.core.attack",
    "AttackOutput": "robustbench_lite.core.attack",
    "AttackResult": "robustbench_lite.core.attack",
    "load_data": "robustbench_lite.datasets",
    "load_inputs": "robustbench_lite.datasets",
    "Defense": "robustbench_lite.core.defense",
    "Detection": "robustbench_lite.core.defense",
    "Detector": "robustbench_lite.core.defense",
    "CheckpointError": "robustbench_lite.core.errors",
    "DataError": "robustbench_lite.core.errors",
    "ModelOutputError": "robustbench_lite.core.errors",
    "RegistryError": "robustbench_lite.core.errors",
    "RobustbenchLiteError": "robustbench_lite.core.errors",
    "SuiteError": "robustbench_lite.core.errors",
    "ThreatSpecError": "robustbench_lite.core.errors",
    "UnsupportedLayerError": "robustbench_lite.core.errors",
    "UnsupportedThreatError": "robustbench_lite.core.errors",
    "load_model": "robustbench_lite.models.loading",
    "Model": "robustbench_lite.core.model",
    "Registry": "robustbench_lite.core.registry",
    "create_attack": "robustbench_lite.core.registry",
    "create_defense": "robustbench_lite.core.registry",
    "create_detector": "robustbench_lite.core.registry",
    "create_verifier": "robustbench_lite.core.registry",
    "list_attacks": "robustbench_lite.core.registry",
    "list_defenses": "robustbench_lite.core.registry",
    "list_detectors": "robustbench_lite.core.registry",
    "list_verifiers": "robustbench_lite.core.registry",
    "register_attack": "robustbench_lite.core.registry",
    "register_defense": "robustbench_lite.core.registry",
    "register_detector": "robustbench_lite.core.registry",
    "register_verifier": "robustbench_lite.core.registry",
    "CheckResult": "robustbench_lite.report.model",
    "Report": "robustbench_lite.report.model",
    "run_suite": "robustbench_lite.suite.runner",
    "Suite": "robustbench_lite.suite.schema",
    "load_suite": "robustbench_lite.suite.schema",
    "ThreatModel": "robustbench_lite.core.threat",
    "Goal": "robustbench_lite.core.types",
    "Inputs": "robustbench_lite.core.types",
    "Norm": "robustbench_lite.core.types",
    "Status": "robustbench_lite.core.types",
    "VerificationResult": "robustbench_lite.core.verifier",
    "Verifier": "robustbench_lite.core.verifier",
}

__all__ = [
    "Attack",
    "AttackOutput",
    "AttackResult",
    "CheckResult",
    "CheckpointError",
    "DataError",
    "Defense",
    "Detection",
    "Detector",
    "Goal",
    "Inputs",
    "Model",
    "ModelOutputError",
    "Norm",
    "Registry",
    "RegistryError",
    "Report",
    "RobustbenchLiteError",
    "Status",
    "SuiteError",
    "ThreatModel",
    "ThreatSpecError",
    "UnsupportedLayerError",
    "UnsupportedThreatError",
    "VerificationResult",
    "Verifier",
    "__version__",
    "create_attack",
    "create_defense",
    "create_detector",
    "create_verifier",
    "list_attacks",
    "list_defenses",
    "list_detectors",
    "list_verifiers",
    "load_data",
    "load_inputs",
    "load_model",
    "register_attack",
    "register_defense",
    "register_detector",
    "register_verifier",
    "zoo",
    "run_suite",
    "load_suite",
    "Suite",
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

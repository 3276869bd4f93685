"""Importing the package stays light: no z3, no foolbox, no plug-in folders under bare names."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_heavy_optional_dependencies() -> None:
    code = (
        "import sys, robustbench_lite as rbl; rbl.ThreatModel.parse('linf:0.1'); "
        "print(','.join(m for m in ('z3', 'foolbox', 'attacks', 'verify') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_plugins_are_namespaced() -> None:
    import robustbench_lite as rbl

    assert "pgd" in rbl.list_attacks()
    assert "attacks" not in sys.modules
    assert sys.modules["robustbench_lite.attacks"].__name__ == "robustbench_lite.attacks"


def test_every_public_name_resolves_lazily_from_the_module_listed_for_it() -> None:
    """``__init__`` lists each public name twice (typing imports and the lazy table): keep them in step."""
    import importlib

    import robustbench_lite as rbl

    assert set(rbl.__all__) == {*rbl._LAZY, "__version__", "zoo"}
    for name, module in rbl._LAZY.items():
        assert getattr(rbl, name) is getattr(importlib.import_module(module), name)
    assert rbl.zoo.__name__ == "robustbench_lite.zoo" and "Model" in dir(rbl)

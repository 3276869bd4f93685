"""Importing the package stays light: no z3, no foolbox, no plug-in folders under bare names."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_heavy_optional_dependencies() -> None:
    code = (
        "import sys, robustbench_lite as rbl; rbl.ThreatModel.parse('linf:0.1'); "
        "print(','.join(m for m in ('z3', 'foolbox', 'attacks', 'verify') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_plugins_are_namespaced() -> None:
    import robustbench_lite as rbl

    assert "pgd" in rbl.list_attacks()
    assert "attacks" not in sys.modules
    assert sys.modules["robustbench_lite.attacks"].__name__ == "robustbench_lite.attacks"

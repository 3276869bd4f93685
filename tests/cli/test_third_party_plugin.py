"""The README's plug-in example, installed as a real distribution: its attack is reachable from
the Python API, the CLI and a suite through the entry point alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = """\
version: 1
name: plugin
model: {checkpoint: zoo:digits-cnn}
data: {source: digits, n: 32}
checks:
  - id: corners
    attack: random_sign
    params: {tries: 4}
    threat: "linf:0.1"
    expect: {robust_accuracy: ">= 0.2"}
"""


@pytest.mark.slow
def test_installed_plugin_attack_runs_from_every_front_door(tmp_path: Path) -> None:
    target, source = tmp_path / "site", tmp_path / "plugin"
    # build from a copy: pip writes build/ and egg-info beside the sources
    shutil.copytree(
        ROOT / "examples" / "plugin", source, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "RBL_DEBUG": ""}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "robustbench_lite", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )

    listed = cli("list", "attacks")
    assert listed.returncode == 0 and "random_sign" in listed.stdout.split(), listed.stderr
    attacked = cli(
        "attack", "random_sign", "--model", "zoo:digits-cnn", "--threat", "linf:0.1", "--n", "16"
    )
    assert attacked.returncode == 0 and "random_sign" in attacked.stdout, attacked.stderr
    suite = tmp_path / "rb_plugin.yaml"
    suite.write_text(SUITE)
    assert cli("validate", str(suite)).returncode == 0
    ran = cli("run", str(suite), "--no-db")
    assert ran.returncode == 0 and "corners" in ran.stdout, ran.stderr
    # without the distribution on the path the name is unknown: the entry point did the work
    env.pop("PYTHONPATH")
    assert cli("list", "attacks").stdout.split().count("random_sign") == 0

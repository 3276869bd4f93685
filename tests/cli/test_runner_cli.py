"""``robustbench-lite run`` / ``evaluate``: formats, exit codes, comparisons, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import robustbench_lite as rbl
from robustbench_lite.cli.main import main

SUITE = """\
version: 1
name: cli
model: {checkpoint: zoo:digits-cnn}
data: {source: digits, n: 20}
shard_size: 10
checks:
  - {id: clean, expect: {clean_accuracy: ">= 0.9"}}
  - {id: fgsm, attack: fgsm, threat: "linf:0.1", expect: {robust_accuracy: ">= 0.1"}}
"""


def suite(tmp_path: Path, text: str = SUITE, name: str = "suite") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def test_run_prints_the_chosen_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", suite(tmp_path), "--no-db", "--format", "md"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no progress bar when stderr is not a terminal
    assert (
        out.startswith("# Robustness report: cli") and "| fgsm | attack | fgsm | linf:0.1 |" in out
    )


@pytest.mark.parametrize(
    ("name", "marker"),
    [("r.html", "<!DOCTYPE html>"), ("r.xml", "<testsuite"), ("r.json", '"schema"')],
)
def test_report_file_format_follows_the_suffix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, marker: str
) -> None:
    report = tmp_path / name
    assert (
        main(["run", suite(tmp_path), "--report", str(report), "--db", str(tmp_path / "r.sqlite")])
        == 0
    )
    assert marker in report.read_text()
    assert capsys.readouterr().out.startswith("check ")  # the table still goes to stdout


def test_failed_expectation_exit_1_and_compare_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = suite(tmp_path, SUITE.replace('">= 0.1"', '">= 0.99"'))
    base = tmp_path / "base.json"
    assert main(["run", path, "--no-db", "--report", str(base), "-q"]) == 1
    assert "1 of 2 checks failed: fgsm" in capsys.readouterr().err
    doc = json.loads(base.read_text())
    doc["checks"][1]["values"]["robust_accuracy"] += 0.1
    better = tmp_path / "better.json"
    better.write_text(json.dumps(doc))
    ok = suite(tmp_path)
    assert main(["run", ok, "--no-db", "-q", "--compare", str(better)]) == 0
    assert "fgsm   robust_accuracy" in capsys.readouterr().out
    assert (
        main(
            [
                "run",
                ok,
                "--no-db",
                "-q",
                "--compare",
                str(better),
                "--compare-fail",
                "robust_accuracy:0.05",
            ]
        )
        == 1
    )
    assert "regression: fgsm robust_accuracy" in capsys.readouterr().err


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    np.savez(
        tmp_path / "flat.npz",
        x=np.random.default_rng(0).random((30, 5)).astype(np.float32),
        y=np.zeros(30, np.int64),
    )
    (tmp_path / "notreport.json").write_text('{"hello": 1}')
    return {
        "malformed yaml": (
            [suite(tmp_path, "name: x\nchecks: [\n", "m")],
            "m.yaml:3:1: malformed YAML",
        ),
        "missing checkpoint": (
            [
                suite(
                    tmp_path,
                    SUITE.replace("zoo:digits-cnn", "gone.pt, arch: 'torch.nn:Identity'"),
                    "c",
                )
            ],
            "gone.pt does not exist",
        ),
        "missing data": (
            [suite(tmp_path, SUITE.replace("source: digits", "source: npz:nothere.npz"), "d")],
            "nothere.npz",
        ),
        "data does not fit": (
            [suite(tmp_path), "--data", f"npz:{tmp_path / 'flat.npz'}"],
            "does not fit zoo:digits-cnn",
        ),
        "bad baseline": (
            [suite(tmp_path), "--compare", str(tmp_path / "notreport.json")],
            "is not a robustbench_lite.report/1",
        ),
        "gate without baseline": (
            [suite(tmp_path), "--compare-fail", "robust_accuracy:0.1"],
            "--compare-fail needs --compare",
        ),
        "bad gate": (
            [suite(tmp_path), "--compare", str(tmp_path / "notreport.json"), "--compare-fail", "x"],
            "notreport",
        ),
        "unreachable ray": (
            [suite(tmp_path), "--executor", "ray", "--ray-address", "127.0.0.1:1"],
            "cannot reach a Ray",
        ),
        "no model": (
            [suite(tmp_path, SUITE.replace("model: {checkpoint: zoo:digits-cnn}\n", ""), "n")],
            "names no model",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "malformed yaml",
        "missing checkpoint",
        "missing data",
        "data does not fit",
        "bad baseline",
        "gate without baseline",
        "bad gate",
        "unreachable ray",
        "no model",
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    if case == "unreachable ray":
        pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[ray]")')
    args, expected = bad_inputs(tmp_path)[case]
    report, db = tmp_path / "out" / "r.json", tmp_path / "out" / "r.sqlite"
    assert main(["run", *args, "--report", str(report), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert not report.exists()


def test_evaluate_is_run_builtin_standard(capsys: pytest.CaptureFixture[str]) -> None:
    if "standard" not in rbl.list_attacks():
        pytest.skip("the `standard` attack ensemble is not registered yet (attacks/standard.py)")
    assert (
        main(
            [
                "evaluate",
                "zoo:digits-cnn",
                "--n",
                "20",
                "--no-db",
                "--quick",
                "--threat",
                "linf:0.1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "check",
        "kind",
        "threat",
        "clean_acc",
        "robust_acc",
        "time_s",
        "result",
    ]
    assert [line.split()[0] for line in out[2:]] == ["clean", "standard@linf:0.1"]


def test_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", suite(tmp_path), "--no-db", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""

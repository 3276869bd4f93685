"""Honest verdicts through the front doors (issue 15, item 5): ``measured`` where nothing was
expected, and a re-run that takes cells from the results store says so and marks them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import robustbench_lite as rbl
from robustbench_lite.cli.main import main

SUITE = """\
version: 1
name: honest
model: {checkpoint: zoo:digits-cnn}
data: {source: digits, n: 20}
shard_size: 10
checks:
  - {id: clean, expect: {clean_accuracy: ">= 0.5"}}
  - {id: fgsm, attack: fgsm, threat: "linf:0.1", expect: {}}
  - {id: pgd, attack: pgd, params: {steps: 2}, threat: "linf:0.1", expect: {}}
"""


def last_columns(table: str) -> dict[str, list[str]]:
    """check id -> the columns after time_s (reused when shown, then result)."""
    lines = table.strip().splitlines()
    start = lines[0].split().index("time_s") + 1
    return {line.split()[0]: line.split()[start:] for line in lines[2:]}


def test_rerun_announces_and_marks_reused_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, db = tmp_path / "honest.yaml", tmp_path / "results.sqlite"
    path.write_text(SUITE)
    args = ["run", str(path), "--db", str(db)]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "reused" not in err and "reused" not in out.splitlines()[0]
    assert last_columns(out) == {"clean": ["PASS"], "fgsm": ["measured"], "pgd": ["measured"]}

    assert main([*args, "--report", str(tmp_path / "r.json")]) == 0
    out, err = capsys.readouterr()
    assert err == (
        f"robustbench-lite: 3 of 3 checks (6 of 6 cells) reused from {db}; --fresh recomputes\n"
    )
    assert last_columns(out) == {
        "clean": ["yes", "PASS"],
        "fgsm": ["yes", "measured"],
        "pgd": ["yes", "measured"],
    }
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [(c["reused"], c["verdict"]) for c in doc["checks"]] == [
        (True, "pass"),
        (True, "measured"),
        (True, "measured"),
    ]
    assert doc["env"]["cells_resumed"] == 6 and doc["verdict"] == "pass"

    assert main([*args, "--fresh"]) == 0
    out, err = capsys.readouterr()
    assert "reused" not in err and "reused" not in out.splitlines()[0]


def test_partly_stored_run_counts_whole_checks_and_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A check added to the suite is computed; the stored ones are reused."""
    path, db = tmp_path / "honest.yaml", tmp_path / "results.sqlite"
    path.write_text(SUITE.replace("  - {id: pgd", "  # - {id: pgd"))
    assert main(["run", str(path), "--db", str(db), "-q"]) == 0
    path.write_text(SUITE)
    assert main(["run", str(path), "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert "2 of 3 checks (4 of 6 cells) reused from" in err
    assert [c[0] for c in last_columns(out).values()] == ["yes", "yes", "-"]
    report = rbl.run_suite(path, db=db)
    assert report.reused_checks == 3 and all(r.reused for r in report.results)


def test_library_run_marks_reused_checks(tmp_path: Path) -> None:
    path, db = tmp_path / "honest.yaml", tmp_path / "results.sqlite"
    path.write_text(SUITE)
    first = rbl.run_suite(path, db=db)
    again = rbl.run_suite(path, db=db)
    assert not any(r.reused for r in first.results) and all(r.reused for r in again.results)
    assert [r.values for r in first.results] == [r.values for r in again.results]


def test_attack_command_prints_measured_not_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["attack", "fgsm", "--model", "zoo:digits-cnn", "--threat", "linf:0.1", "--n", "8"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[-1] == "measured" and "PASS" not in out


def test_verify_command_prints_measured_not_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["verify", "--model", "zoo:digits-mlp", "--threat", "linf:0.01", "--n", "2"]
        + ["--timeout", "5", "--workers", "1"]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[2].split()[-1] == "measured" and "PASS" not in out


def test_evaluate_measures_robustness(capsys: pytest.CaptureFixture[str]) -> None:
    """builtin:standard sets no robustness threshold: its attack rows read measured."""
    assert main(["evaluate", "zoo:digits-cnn", "--n", "10", "--no-db", "--threat", "linf:0.1"]) == 0
    rows = last_columns(capsys.readouterr().out)
    assert rows["standard@linf:0.1"] == ["measured"]

"""Detect (and invert) checks need no data (issue 15, item 7): a suite of detect checks runs
without a ``data:`` block, whatever inputs the model takes; a named data block still reaches
detectors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.errors import DataError
from robustbench_lite.suite.kinds import all_kinds


@rbl.register_detector("test_data_seen", replace=True)
@dataclass(frozen=True)
class DataSeen(rbl.Detector):
    """Never flags; its evidence says which data it was given."""

    def scan(self, model: rbl.Model, data: Any = None) -> rbl.Detection:
        seen = "none" if data is None else f"{len(data[1])} samples"
        return rbl.Detection(flagged=False, score=0.0, threshold=1.0, evidence={"seen": seen})


def text_like_model() -> rbl.Model:
    """A model of 5 inputs: the default digits (N, 1, 8, 8) do not fit it."""
    return rbl.Model(net=nn.Linear(5, 2), name="five-inputs", input_shape=(5,), num_classes=2)


def write(tmp_path: Path, checks: str, head: str = "") -> Path:
    path = tmp_path / "scan.yaml"
    path.write_text(f"version: 1\nname: scan\n{head}checks:\n{checks}")
    return path


SCAN = "  - {id: scan, detect: test_data_seen, expect: {flagged: false}}\n"


def test_only_detect_and_invert_checks_need_no_data() -> None:
    assert {k.name: k.needs_data for k in all_kinds()} == {
        "clean": True,
        "attack": True,
        "verify": True,
        "detect": False,
        "invert": False,
    }


def test_detect_suite_without_data_block_runs_on_any_model(tmp_path: Path) -> None:
    report = rbl.run_suite(write(tmp_path, SCAN), text_like_model())
    (scan,) = report.results
    assert scan.passed and scan.verdict == "pass" and scan.detail["evidence"] == {"seen": "none"}
    assert report.env["n"] == 0 and report.env["data"] is None


def test_detect_suite_with_a_named_data_block_hands_it_over(tmp_path: Path) -> None:
    path = write(tmp_path, SCAN, head="data: {source: digits, n: 12}\n")
    (scan,) = rbl.run_suite(path, rbl.load_model("zoo:digits-cnn")).results
    assert scan.detail["evidence"] == {"seen": "12 samples"}


def test_detect_check_with_n_and_no_data(tmp_path: Path) -> None:
    path = write(tmp_path, "  - {id: scan, detect: test_data_seen, n: 50, expect: {}}\n")
    (scan,) = rbl.run_suite(path, text_like_model()).results
    assert scan.verdict == "measured" and scan.detail["evidence"] == {"seen": "none"}


def test_a_check_that_reads_data_still_loads_and_checks_it(tmp_path: Path) -> None:
    path = write(tmp_path, "  - {id: clean, expect: {}}\n" + SCAN, head="data: {n: 8}\n")
    report = rbl.run_suite(path, rbl.load_model("zoo:digits-cnn"))
    assert report.results[1].detail["evidence"] == {"seen": "8 samples"}
    with pytest.raises(DataError, match="does not fit five-inputs"):
        rbl.run_suite(path, text_like_model())


def test_detect_only_cli_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robustbench_lite.cli.main import main

    path = write(tmp_path, SCAN)
    assert main(["validate", str(path)]) == 0
    assert main(["run", str(path), "--model", "zoo:digits-cnn", "--no-db", "--format", "json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{") :])
    assert doc["checks"][0]["detail"]["evidence"] == {"seen": "none"}

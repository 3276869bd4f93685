"""The verifier is ``complete`` with ``smt`` as an alias (same answers, recorded as ``complete``),
and a suite's verify check carries the verifier's search statistics summed over its samples."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from verify_helpers import DECIDE_S, as_model, random_mlp, write_onnx

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.report.formats import comparable
from robustbench_lite.report.verify_search import search_summary, search_text


def test_smt_and_complete_give_the_same_verdicts() -> None:
    model = as_model(random_mlp([2, 8, 8, 3], seed=1), 2)
    x = torch.rand(6, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = model(x).argmax(1)
    old = rbl.create_verifier("smt", workers=1).verify(model, x, y, "linf:0.1", timeout_s=DECIDE_S)
    new = rbl.create_verifier("complete", workers=1).verify(
        model, x, y, "linf:0.1", timeout_s=DECIDE_S
    )
    assert old.per_sample == new.per_sample
    assert sorted(old.counterexamples) == sorted(new.counterexamples)
    assert {rbl.Status.VERIFIED, rbl.Status.FALSIFIED} <= set(new.per_sample)  # both kinds
    methods = [s["method"] for s in new.stats["per_sample"]]
    assert set(methods) <= {"falsify", "input_split", "input_split x2"} and "falsify" in methods


def test_suite_verify_smt_runs_complete_and_reports_its_search(tmp_path: Path) -> None:
    body = """\
        version: 1
        name: names
        seed: 0
        shard_size: 3
        model: {checkpoint: zoo:digits-mlp}
        data: {source: digits, n: 6}
        checks:
          - {id: old, verify: smt, params: {workers: 1}, threat: "linf:0.02", expect: {}}
          - {id: new, verify: complete, params: {workers: 1}, threat: "linf:0.02", expect: {}}
    """
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(body))
    report = rbl.run_suite(path)
    old, new = report.results
    assert old.component == new.component == "complete"
    assert old.values == new.values and old.detail["status"] == new.detail["status"]
    for r in (old, new):
        search = r.detail["timing"]["search"]
        per_sample = r.detail["timing"]["per_sample"]
        assert len(per_sample) == search["samples"] == 6  # both cells, in sample order
        assert sum(search["methods"].values()) == 6
        assert set(search["methods"]) <= {"falsify", "relu_bab", "relu_split"}
        decided_by_search = 6 - search["methods"].get("falsify", 0)
        assert search["domains"] >= decided_by_search  # at least each root domain
        assert search["time_s"] == pytest.approx(sum(s["time_s"] for s in per_sample), abs=1e-3)
        assert search == search_summary(per_sample)
    # search statistics follow the wall clock: timing detail, out of what runs must reproduce
    docs = comparable(report)["checks"]
    assert "timing" not in docs[0]["detail"] and docs[0]["values"] == docs[1]["values"]
    table = report.render("table")
    assert f"old: search over {search_text(old.detail['timing']['search'])}" in table
    assert "## Verifier search" in report.to_markdown()


def test_search_summary_sums_what_each_method_reports() -> None:
    per_sample = [
        {"method": "falsify", "time_attack_s": 0.5, "time_s": 0.6},
        {"method": "relu_bab", "domains": 40, "z3_leaves": 2, "time_bounds_s": 1.5, "time_s": 2},
        {"method": "input_split x2", "boxes": 300, "time_attack_s": 0.25, "time_s": 1.0},
    ]
    summary = search_summary(per_sample)
    assert summary == {
        "samples": 3,
        "methods": {"falsify": 1, "input_split x2": 1, "relu_bab": 1},
        "domains": 340,
        "z3_leaves": 2,
        "time_attack_s": 0.75,
        "time_bounds_s": 1.5,
        "time_s": 3.6,
    }
    assert search_text(summary) == (
        "3 samples: falsify 1, input_split x2 1, relu_bab 1; 340 domains, 2 z3 leaves; "
        "seconds: attack 0.75, bounds 1.50 (total 3.60)"
    )
    assert search_summary([{"radius": 0.5}]) == {} and search_text({}) == ""


def test_vnncomp_mode_takes_the_alias_and_refuses_other_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_path = write_onnx(random_mlp([2, 4, 2], seed=1), tmp_path / "n.onnx", 2)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(
        "".join(f"(declare-const {v} Real)\n" for v in ("X_0", "X_1", "Y_0", "Y_1"))
        + "(assert (<= X_0 1))\n(assert (>= X_0 -1))\n(assert (<= X_1 1))\n(assert (>= X_1 -1))\n"
        + "(assert (<= Y_0 -1000000))\n"
    )
    args = ["verify", str(onnx_path), str(prop), "--timeout", f"{DECIDE_S:.0f}", "--workers", "1"]
    assert main([*args, "--verifier", "smt"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "unsat"
    assert main([*args, "--verifier", "smoothing"]) == 2
    assert "VNN-COMP mode runs the complete verifier" in capsys.readouterr().err


def test_the_pytest_fixture_records_the_canonical_name() -> None:
    from robustbench_lite.pytest_plugin.fixture import Robustness

    class Session:
        def __init__(self) -> None:
            self.results: list[Any] = []

        def record(self, results: list[Any], model: str) -> None:
            self.results += results

    session = Session()
    model = as_model(random_mlp([2, 8, 8, 3], seed=1), 2)
    x = torch.rand(3, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    res = Robustness(session, "t.py::test").verify(
        "smt", model, (x, model(x).argmax(1)), "linf:0.1", timeout_s=20, workers=1
    )
    (check,) = session.results
    assert check.component == "complete" and check.id == "t.py::test::complete@linf:0.1"
    assert check.values["verified_fraction"] == res.verified_fraction

"""A fixed-seed slice of the differential soundness fuzzer (benchmarks/verify_soundness.py):
random networks of every kind, exact MILP answers; the verifier is never wrong."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from verify_helpers import DECIDE_S

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "verify_soundness.py"


def _fuzzer():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("verify_soundness", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_no_wrong_answer_and_no_invalid_counterexample(one_thread: None) -> None:
    fuzz = _fuzzer()
    # 8 instances of each of the 7 kinds; each decides in under 2 s here (niced, loaded machine)
    result = fuzz.run(56, timeout_s=DECIDE_S, seed0=5000)
    assert set(result["per_kind"]) == set(fuzz.KINDS)
    totals = result["totals"]
    assert totals.get("wrong", 0) == 0 and totals.get("invalid", 0) == 0, result["instances"]
    assert totals.get("refused", 0) == 0 and totals.get("unknown", 0) == 0
    assert totals.get("correct", 0) == 56
    truths = {r["truth"] for r in result["instances"] if r["outcome"] == "correct"}
    assert truths == {"sat", "unsat"}

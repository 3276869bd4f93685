"""The VNN-COMP harness (benchmarks/verify_vnncomp.py): summaries over partial tool coverage and
the re-check of a peer tool's counterexample."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from verify_helpers import random_mlp, write_onnx

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "verify_vnncomp.py"
HEADER = "".join(f"(declare-const {v} Real)\n" for v in ("X_0", "X_1", "Y_0", "Y_1"))
BOX = "(assert (<= X_0 1))\n(assert (>= X_0 -1))\n(assert (<= X_1 1))\n(assert (>= X_1 -1))\n"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_vnncomp", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_summaries_count_only_the_rows_a_tool_ran_with_their_own_time_limits() -> None:
    vv = _harness()
    rows = [
        {"expected": "unsat", "timeout_s": "120", "ours": {"verdict": "timeout", "time_s": 121.0}},
        {
            "expected": "unsat",
            "timeout_s": "300",
            "ours": {"verdict": "unsat", "time_s": 4.0},
            "peer": {"verdict": "sat", "time_s": 9.0, "witness_valid": False},
        },
        {
            "expected": "sat",
            "timeout_s": "300",
            "ours": {"verdict": "sat", "time_s": 1.0},
            "peer": {"verdict": "sat", "time_s": 2.0, "witness_valid": True},
        },
    ]
    ours, peer = vv.summarize(rows, "ours", 300.0), vv.summarize(rows, "peer", 300.0)
    assert (ours["n"], ours["solved"], ours["wrong"], ours["timeouts"]) == (3, 2, 0, 1)
    assert ours["total_s"] == 120.0 + 4.0 + 1.0  # the 120 s instance counts 120, not 300
    assert (peer["n"], peer["solved"], peer["wrong"], peer["sat_witness_invalid"]) == (2, 2, 1, 1)


def test_a_peer_witness_is_judged_on_the_real_network(tmp_path: Path) -> None:
    vv = _harness()
    net = random_mlp([2, 6, 2], seed=4)
    onnx_path = write_onnx(net, tmp_path / "n.onnx", 2)
    grid = torch.cartesian_prod(torch.linspace(-1, 1, 41), torch.linspace(-1, 1, 41))
    with torch.no_grad():
        gap = (net(grid)[:, 0] - net(grid)[:, 1]).double().numpy()
    threshold = float(np.median(gap))  # Y_0 - Y_1 <= t holds on about half of the box
    prop = tmp_path / "p.vnnlib"
    prop.write_text(HEADER + BOX + f"(assert (<= (- Y_0 Y_1) {threshold!r}))\n")
    inside = grid[int(np.argmin(gap))].double().numpy()
    outside_box = np.array([1.5, 0.0])
    no_violation = grid[int(np.argmax(gap))].double().numpy()
    assert vv.witness_gap(str(onnx_path), str(prop), inside) <= 0.0
    assert vv.witness_gap(str(onnx_path), str(prop), outside_box) > 0.0
    assert vv.witness_gap(str(onnx_path), str(prop), no_violation) > 0.0

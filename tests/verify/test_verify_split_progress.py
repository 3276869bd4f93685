"""Input splitting reports its progress (elapsed, boxes left and visited, worst open gap) like
ReLU branch and bound: through the reporter object, and as log lines under ``--verbose``."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from robustbench_lite.verify import portfolio
from robustbench_lite.verify.branch import SplitProgress, input_split
from robustbench_lite.verify.layers import lower_model
from robustbench_lite.verify.vnnlib import parse_vnnlib
from verify_helpers import DECIDE_S, as_model, random_mlp, write_onnx

from robustbench_lite.cli.main import main

LINE = re.compile(
    r"input_split\[(best|smear)\] \d+\.\ds: domains left \d+, visited \d+, "
    r"worst open gap (-?[\d.e+-]+|-?inf)"
)


def _net_and_property() -> tuple[torch.nn.Sequential, str]:
    """A 2-16-16-2 ReLU net and the property ``Y_0 <= k`` on [-1, 1]^2 with k 2% of the output
    range below the smallest Y_0 on a 801 x 801 grid: unsat, after a few splits."""
    net = random_mlp([2, 16, 16, 2], seed=4)
    grid = torch.linspace(-1, 1, 801)
    with torch.no_grad():
        y0 = net(torch.cartesian_prod(grid, grid))[:, 0]
    k = float(y0.min() - 0.02 * (y0.max() - y0.min()))
    text = "".join(f"(declare-const {v} Real)\n" for v in ("X_0", "X_1", "Y_0", "Y_1"))
    text += "(assert (<= X_0 1))\n(assert (>= X_0 -1))\n(assert (<= X_1 1))\n(assert (>= X_1 -1))\n"
    return net, text + f"(assert (<= Y_0 {k!r}))\n"


def test_the_reporter_sees_every_batch_of_one_search() -> None:
    net, text = _net_and_property()
    (case,) = parse_vnnlib(text).cases
    seen: list[dict[str, Any]] = []
    progress = SplitProgress(seen.append, "smear", every_s=0.0)
    out = input_split(
        lower_model(as_model(net, 2)),
        case,
        lambda p: None,
        time.monotonic() + 60,
        split_rule="smear",
        batch=4,
        progress=progress,
    )
    assert out.status == "unsat" and out.stats["batches"] == len(seen) > 1
    assert out.stats["boxes"] == progress.visited
    assert all(a["visited"] < b["visited"] for a, b in zip(seen, seen[1:]))
    assert all(s["method"] == "input_split[smear]" and s["domains_left"] >= 1 for s in seen)
    assert seen[0]["worst_gap"] == -np.inf  # reported before the first bound
    gaps = [s["worst_gap"] for s in seen[1:]]
    assert all(np.isfinite(g) and g < 0 for g in gaps)  # an open box has a deficit


def test_verbose_verify_logs_input_split_progress(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(portfolio, "PROGRESS_S", 0.0)  # a report at every batch
    net, text = _net_and_property()
    onnx_path = write_onnx(net, tmp_path / "n.onnx", 2)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(text)
    with caplog.at_level(logging.INFO, logger="robustbench_lite.verify.complete"):
        assert (
            main(
                [
                    "verify",
                    str(onnx_path),
                    str(prop),
                    "--timeout",
                    f"{DECIDE_S:.0f}",
                    "--workers",
                    "1",
                ]
            )
            == 0
        )
    assert capsys.readouterr().out.splitlines()[0] == "unsat"
    lines = [r.getMessage() for r in caplog.records if "input_split[" in r.getMessage()]
    assert lines and all(LINE.fullmatch(line) for line in lines), lines

"""Masking flags over eps sweeps (report/masking.py): they fire on masked evaluations and stay
silent on an honest one, and every report format shows them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.report.masking import (
    BLACK_BOX,
    LOSS_NOT_INCREASING,
    NON_MONOTONE,
    UNBOUNDED,
    black_box_beats,
    loss_not_increasing,
    non_monotone,
    unbounded_not_zero,
)
from robustbench_lite.report.model import CheckResult, Report
from robustbench_lite.report.scaling import sweeps
from robustbench_lite.suite.runner import run_suite


def test_rules_on_constructed_sequences() -> None:
    eps = [0.01, 0.02, 0.05, 0.1]
    flags = non_monotone(eps, [0.9, 0.7, 0.8, 0.71], n=100)
    assert [(f.name, f.eps) for f in flags] == [(NON_MONOTONE, 0.05)]  # 0.71 vs 0.70: one sample
    assert non_monotone(eps, [0.9, 0.8, 0.7, 0.6], n=100) == []
    assert [f.eps for f in loss_not_increasing(eps, [0.5, 1.0, 0.6, 2.0])] == [0.05]
    assert loss_not_increasing(eps, [0.5, 1.0, 0.99, 2.0]) == []  # a 1% dip is noise
    assert black_box_beats(0.1, 0.8, 0.5, "square", 100) is not None
    assert black_box_beats(0.1, 0.8, 0.795, "square", 100) is None  # half a sample
    assert black_box_beats(0.1, 0.53, 0.522, "square", 540) is None  # 4 of 286: 1.4%
    assert black_box_beats(0.1, 0.035, 0.026, "square", 540) is not None  # 5 of 19
    limits = [1.0] * 4
    big = [0.1, 0.3, 0.5, 1.0]
    assert [f.eps for f in unbounded_not_zero(big, [0.5, 0.2, 0.1, 0.0], limits)] == [0.5]
    assert unbounded_not_zero(big, [0.5, 0.2, 0.1, 0.05], [None] * 4) == []  # box unknown


def _check(
    cid: str, component: str, eps: float, acc: float, loss: float, queries: bool = False
) -> CheckResult:
    values = {"clean_accuracy": 0.9, "robust_accuracy": acc, "success_rate": 1 - acc / 0.9}
    return CheckResult(
        id=cid,
        kind="attack",
        component=component,
        threat=f"linf:{eps:g}",
        passed=True,
        values={**values, **({"queries": 100.0} if queries else {})},
        detail={
            "n": 100,
            "eps": eps,
            "norm": "linf",
            "goal": "untargeted",
            "defense": "weird <def>",
            "params": {},
            "scaling": {"adversarial_loss": loss, "tilt_angle_deg": 80.0, "eps_limit": 1.0},
        },
    )


def test_constructed_masked_sweep_fires_every_flag_in_every_format() -> None:
    results = (
        _check("pgd1", "pgd", 0.05, 0.8, 1.0),
        _check("pgd2", "pgd", 0.1, 0.85, 0.7),  # accuracy up, loss down
        _check("pgd3", "pgd", 0.5, 0.6, 1.5),  # half the box: still 60% robust
        _check("sq", "square", 0.1, 0.3, 2.0, queries=True),
    )
    found = {s.component: s for s in sweeps(results)}
    assert set(found) == {"pgd"}  # square has one eps: a peer, not a sweep
    names = {(f.name, f.eps) for f in found["pgd"].flags}
    assert names == {
        (NON_MONOTONE, 0.1),
        (LOSS_NOT_INCREASING, 0.1),
        (UNBOUNDED, 0.5),
        (BLACK_BOX, 0.1),
    }
    report = Report(suite="s", model="m", results=results)
    doc = json.loads(report.render("json"))
    assert {f["flag"] for f in doc["scaling"][0]["masking_flags"]} == {n for n, _ in names}
    for fmt in ("table", "md", "html"):
        text = report.render(fmt)
        assert all(n in text for n, _ in names), fmt
        if fmt != "table":  # markup formats escape names
            assert "<def>" not in text


class Quantize(nn.Module):
    """Rounds inputs to 0/1: zero gradient almost everywhere (gradient masking by design)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)


SUITE = """\
version: 1
name: sweep
seed: 0
data: {source: digits, split: test, n: 100}
checks:
  - {id: pgd, attack: pgd, params: {steps: 10}, threat: "linf:0.1", eps: [0.02, 0.05, 0.1, 0.3, 0.5], expect: {}}
  - {id: sq, attack: square, params: {n_queries: 200}, threat: "linf:0.3", expect: {}}
"""


@pytest.fixture(scope="module")
def sweep_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("masking") / "sweep.yaml"
    path.write_text(textwrap.dedent(SUITE))
    return path


def test_flags_fire_on_a_gradient_masked_model(
    sweep_suite: Path, digits_cnn: rbl.Model, one_thread: None
) -> None:
    masked = rbl.Model(
        net=nn.Sequential(Quantize(), digits_cnn.net),
        name="masked",
        input_shape=(1, 8, 8),
        num_classes=10,
    )
    report = run_suite(sweep_suite, masked)
    (pgd,) = [s for s in sweeps(report.results) if s.component == "pgd"]
    fired = {f.name for f in pgd.flags}
    assert {BLACK_BOX, UNBOUNDED} <= fired, pgd.flags
    point = pgd.points[-1]
    assert point.eps == 0.5 and point.robust_accuracy > 0  # what the flag saw
    assert "unbounded_eps_not_zero" in report.render("table")


def test_flags_stay_silent_on_a_trained_net(
    sweep_suite: Path, digits_cnn: rbl.Model, one_thread: None
) -> None:
    report = run_suite(sweep_suite, digits_cnn)
    (pgd,) = [s for s in sweeps(report.results) if s.component == "pgd"]
    assert pgd.flags == ()
    assert [p.robust_accuracy for p in pgd.points][-1] == 0.0
    losses = [p.adversarial_loss for p in pgd.points]
    assert all(a is not None for a in losses) and losses == sorted(losses)  # type: ignore[type-var]
    assert all(p.tilt_angle_deg is not None and 0 < p.tilt_angle_deg < 90 for p in pgd.points[1:])
    doc = report.to_dict()
    assert doc["scaling"][0]["masking_flags"] == []
    assert "masking flags: none" in report.render("table")

"""Robustness-scaling metrics: the power-law fit and the boundary-tilting angle (report/scaling.py)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.report.power_law import MIN_POINTS, fit_power_law, fit_window, loglog_fit
from robustbench_lite.report.scaling_inputs import (
    check_scaling,
    class_centroids,
    per_sample_scaling,
    tilt_angles,
)
from robustbench_lite.report.scaling_plot import loglog_png


def test_fit_recovers_a_known_exponent_and_prefactor() -> None:
    eps = [0.002 * 1.6**i for i in range(8)]
    exact = loglog_fit(eps, [0.7 * e**1.3 for e in eps])
    assert exact.exponent == pytest.approx(1.3, abs=1e-9)
    assert exact.prefactor == pytest.approx(0.7, rel=1e-9)
    assert exact.exponent_se < 1e-9 and exact.r2 == pytest.approx(1.0)

    gen = torch.Generator().manual_seed(0)
    noise = (0.05 * torch.randn(len(eps), generator=gen, dtype=torch.float64)).tolist()
    noisy = [0.7 * e**1.3 * 10**z for e, z in zip(eps, noise)]
    fit = loglog_fit(eps, noisy)
    assert abs(fit.exponent - 1.3) < 3 * fit.exponent_se  # within its own error bar
    assert 0 < fit.exponent_se < 0.1 and fit.prefactor_se > 0


def test_standard_errors_match_scipy_linregress() -> None:
    from scipy.stats import linregress

    eps = [0.01, 0.02, 0.04, 0.08, 0.16]
    err = [0.004, 0.011, 0.019, 0.05, 0.09]
    fit = loglog_fit(eps, err)
    ref = linregress([math.log10(e) for e in eps], [math.log10(a) for a in err])
    assert fit.exponent == pytest.approx(ref.slope)
    assert fit.exponent_se == pytest.approx(ref.stderr)
    assert fit.log10_prefactor_se == pytest.approx(ref.intercept_stderr)
    assert fit.r2 == pytest.approx(ref.rvalue**2)


def test_fit_window_leaves_out_zero_single_sample_and_saturated_points() -> None:
    n = 100
    eps = [0.0, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032]
    err = [0.0, 0.0, 0.01, 0.03, 0.09, 0.25, 0.6]  # 0.01 = one sample of 100
    assert fit_window(eps, err, n) == [False, False, False, True, True, True, False]
    fit, note = fit_power_law(eps, err, n)
    assert fit is not None and fit.eps_used == (0.004, 0.008, 0.016)
    assert fit.eps_left_out == (0.0, 0.001, 0.002, 0.032)
    assert not fit.reliable and "3 of 7 points" in note
    none, why = fit_power_law(eps[:5], err[:5], n)
    assert none is None and f"needs {MIN_POINTS}" in why


def test_angle_on_a_2d_case_with_known_geometry() -> None:
    # class 0 around (0, 0), class 1 around (1, 0): the nearest-centroid direction is +x
    data = torch.tensor([[0.0, 0.1], [0.0, -0.1], [1.0, 0.2], [1.0, -0.2]])
    labels = torch.tensor([0, 0, 1, 1])
    mu, present = class_centroids(data, labels, 3)
    assert torch.allclose(mu[:2], torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64))
    assert present.tolist() == [True, True, False]
    x = torch.tensor([[0.2, 0.0], [0.2, 0.0], [0.2, 0.0], [0.8, 0.0], [0.2, 0.0], [0.2, 0.0]])
    x_adv = x + torch.tensor(
        [[0.1, 0.1], [0.0, 0.3], [0.3, 0.0], [-0.2, 0.2], [0.1, 0.0], [0.1, 0.1]]
    )
    y = torch.tensor([0, 0, 0, 1, 0, 0])
    pred = torch.tensor(
        [1, 1, 1, 0, 0, 2]
    )  # 4th goes 1 -> 0; 5th unchanged; 6th to an absent class
    broken = torch.tensor([True, True, True, True, False, True])
    angles = tilt_angles(x, x_adv, y, pred, broken, mu, present)
    assert angles[0] == pytest.approx(45.0)
    assert angles[1] == pytest.approx(90.0)
    assert angles[2] == pytest.approx(0.0)
    assert angles[3] == pytest.approx(45.0)  # toward class 0: w_nc = mu_0 - mu_1 = -x
    assert angles[4] is None and angles[5] is None
    summary = check_scaling([1.0, 3.0], angles, 1.0)
    assert summary["tilt_angle_deg"] == pytest.approx(45.0) and summary["tilt_samples"] == 4
    assert summary["adversarial_loss"] == pytest.approx(2.0)


def test_angle_of_a_linear_model_is_the_card_deviation_angle() -> None:
    """For a linear 2-class model an l2 PGD without random start moves along -(w_y - w_j),
    so the measured angle is the card's angle between the weight difference and mu_j - mu_y."""
    gen = torch.Generator().manual_seed(0)
    mu0, mu1 = torch.tensor([0.3, 0.5]), torch.tensor([0.7, 0.5])
    data = torch.cat(
        [
            mu0 + 0.05 * torch.randn(40, 2, generator=gen),
            mu1 + 0.05 * torch.randn(40, 2, generator=gen),
        ]
    ).clamp(0, 1)
    labels = torch.tensor([0] * 40 + [1] * 40)
    net = nn.Linear(2, 2)
    with torch.no_grad():  # a boundary tilted 30 degrees from the centroids' bisector
        w = torch.tensor([math.cos(math.radians(30)), math.sin(math.radians(30))])
        net.weight.copy_(torch.stack([-w, w]) * 10)
        net.bias.copy_(torch.tensor([5.0, -5.0]))
    model = rbl.Model(net=net, name="linear", input_shape=(2,), num_classes=2)
    x, y = data[:40], labels[:40]
    attack = rbl.create_attack("pgd", steps=20, random_start=False)
    r = attack(model, x, y, "l2:0.5", seed=0)
    assert int(r.success.sum()) >= 10
    out = per_sample_scaling(model, x, y, r, rbl.ThreatModel.parse("l2:0.5"), data, labels)
    mu, _ = class_centroids(data, labels, 2)
    nc = mu[1] - mu[0]
    expected = math.degrees(math.acos(float(nc @ w.double()) / float(nc.norm())))
    got = [a for a in out["tilt_deg"] if a is not None]
    assert len(got) == int((r.success & r.clean_correct).sum())
    assert statistics.median(got) == pytest.approx(expected, abs=1.0)
    assert out["eps_limit"] == pytest.approx(math.sqrt(2))
    assert len(out["adv_loss"]) == len(y) and min(out["adv_loss"]) >= 0


def test_sweeps_fit_and_figure_from_report_checks() -> None:
    from robustbench_lite.report.model import CheckResult, Report
    from robustbench_lite.report.scaling import sweeps

    def check(eps: float, broken: int) -> CheckResult:
        return CheckResult(
            id=f"pgd@eps={eps:g}",
            kind="attack",
            component="pgd",
            threat=f"linf:{eps:g}",
            passed=True,
            values={
                "clean_accuracy": 1.0,
                "robust_accuracy": 1 - broken / 200,
                "success_rate": broken / 200,
            },
            detail={"n": 200, "eps": eps, "norm": "linf", "goal": "untargeted", "params": {}},
        )

    eps = [0.005 * 2**i for i in range(6)]
    results = [check(e, round(200 * 2.0 * e**1.5)) for e in eps]
    (found,) = sweeps(results)
    assert found.fit is not None and found.fit.exponent == pytest.approx(1.5, abs=0.1)
    png = loglog_png([found])
    assert png is not None and png.startswith(b"\x89PNG")
    doc = Report(suite="s", model="m", results=tuple(results)).to_dict()
    assert doc["scaling"][0]["power_law"]["exponent"] == pytest.approx(found.fit.exponent)
    assert sweeps(results[:1]) == []  # one eps is no sweep


def test_builtin_scaling_suite_sweeps_eight_eps() -> None:
    from robustbench_lite.suite.schema import load_suite

    suite = load_suite("builtin:scaling")
    pgd = sorted(c.threat.eps for c in suite.checks if c.component == "pgd" and c.threat)
    assert len(pgd) == 8 and pgd[-1] / pgd[0] >= 10  # at least a decade (card 6a)

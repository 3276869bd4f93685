"""Randomized smoothing as a defense (Cohen et al. 2019): the statistics against scipy, PREDICT
and its abstentions on a linear classifier whose smoothed classifier is known exactly, and the
SmoothAdv attack's ball."""

from __future__ import annotations

import math

import pytest
import torch
from robustbench_lite.defenses.smoothing import smooth, smooth_adv_l2
from scipy.stats import beta, binomtest
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.smoothing import (
    ABSTAIN,
    binomial_test_half,
    clopper_pearson_lower,
    noise_counts,
    radius_from_bound,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def half_plane(bounds: tuple[float, float] = (-3.0, 3.0), at: float = 0.0) -> rbl.Model:
    """Two classes split by x0 = at (class 0 above): ``P(f(x + e) = 0) = Phi((x0 - at) / sigma)``,
    so the smoothed classifier is the same half-plane and its exact l2 radius is |x0 - at|."""
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        lin.bias.copy_(torch.tensor([-at, at]))
    return rbl.Model(lin, bounds=bounds, input_shape=(2,), num_classes=2, name="half-plane")


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000, 10_000])
def test_clopper_pearson_and_binomial_test_match_scipy(n: int) -> None:
    for k in sorted({0, 1, n // 3, n // 2, (n + 1) // 2, n - 1, n, int(0.99 * n)} - {-1}):
        for alpha in (0.001, 0.01, 0.05):
            want = float(beta.ppf(alpha, k, n - k + 1)) if k > 0 else 0.0
            assert clopper_pearson_lower(k, n, alpha) == pytest.approx(want, abs=1e-9)
        assert binomial_test_half(k, n) == pytest.approx(binomtest(k, n, 0.5).pvalue, abs=1e-9)
    # the bound is the one-sided 1 - alpha bound (statsmodels' alpha=2*alpha two-sided interval)
    low = binomtest(990, 1000).proportion_ci(confidence_level=0.998, method="exact").low
    assert clopper_pearson_lower(990, 1000, 0.001) == pytest.approx(low, abs=1e-9)


def test_radius_is_sigma_times_the_normal_quantile() -> None:
    assert radius_from_bound(0.5, 0.25) == 0.0
    assert radius_from_bound(0.3, 0.25) == 0.0
    assert radius_from_bound(0.975, 0.5) == pytest.approx(0.5 * 1.959964, abs=1e-6)


def test_votes_are_reproducible_counts_of_n_draws() -> None:
    model = half_plane()
    x = torch.tensor([[0.3, 0.0], [-0.1, 1.0]])
    a = noise_counts(
        model, x, sigma=0.5, n=777, batch_size=100, generator=torch.Generator().manual_seed(1)
    )
    assert a.shape == (2, 2) and a.sum(dim=1).tolist() == [777, 777]
    assert torch.equal(
        a[0],
        noise_counts(
            model,
            x[:1],
            sigma=0.5,
            n=777,
            batch_size=100,
            generator=torch.Generator().manual_seed(1),
        )[0],
    )
    # the votes follow Phi(x0 / sigma) (binomial sd at n=777 is under 0.018)
    assert float(a[0, 0]) / 777 == pytest.approx(0.5 * (1 + math.erf(0.6 / math.sqrt(2))), abs=0.06)


def test_predict_returns_the_half_plane_class_and_abstains_on_the_boundary() -> None:
    g = smooth(half_plane(), sigma=0.5, n=2000, alpha=0.001, seed=0)
    x = torch.tensor([[1.0, 0.3], [-0.8, -2.0], [0.0, 0.5], [0.0, -1.0]])
    pred = g.predict(x)
    assert pred[:2].tolist() == [0, 1]
    assert pred[2:].tolist() == [ABSTAIN, ABSTAIN]  # pA = 1/2 exactly: the test never rejects
    # repeated calls are fresh draws, and far from the boundary the answer never changes
    assert all(g.predict(x[:2]).tolist() == [0, 1] for _ in range(3))


def test_certify_is_below_the_exact_radius() -> None:
    g = smooth(half_plane(), sigma=0.5, n=5000, seed=3)
    x = torch.tensor([[0.4, 0.0], [-1.0, 0.7], [0.01, 0.0]])
    certs = g.certify(x, n0=100)
    assert [c.prediction for c in certs[:2]] == [0, 1]
    for c, exact in zip(certs[:2], (0.4, 1.0)):
        assert 0.8 * exact < c.radius < exact  # Clopper-Pearson at n=5000 gives up a little
    assert certs[2].prediction == ABSTAIN and certs[2].radius == 0.0


def test_smooth_adv_stays_in_the_ball_and_bounds_and_crosses_a_thin_margin() -> None:
    g = smooth(half_plane(bounds=(0.0, 1.0), at=0.5), sigma=0.25, n=2000, seed=0)
    x = torch.tensor([[0.65, 0.5], [0.95, 0.05]])  # 0.15 and 0.45 above the boundary
    y = torch.zeros(2, dtype=torch.long)
    x_adv = smooth_adv_l2(g, x, y, eps=0.3, steps=10, m=16)
    assert float((x_adv - x).norm(dim=1).max()) <= 0.3 + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    # the first point is 0.15 from the boundary, the second 0.45: only the first is broken
    assert g.predict(x_adv).tolist() == [1, 0]
    fixed = smooth_adv_l2(g, x, y, eps=0.3, steps=10, m=16, fixed_noise=True)
    assert g.predict(fixed).tolist()[0] == 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": 0.25, "n": 0}, "n"),
        ({"sigma": 0.25, "alpha": 1.0}, "alpha"),
        ({"sigma": 0.25, "batch_size": True}, "batch_size"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, float], param: str) -> None:
    with pytest.raises(ParameterError) as info:
        smooth(half_plane(), **kwargs)  # type: ignore[arg-type]
    assert info.value.param == param and "\n" not in str(info.value)

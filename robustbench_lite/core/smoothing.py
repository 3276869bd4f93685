"""Randomized smoothing's Monte-Carlo core: Gaussian votes, the paper's tests, PREDICT, CERTIFY.

Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019 (arXiv 1902.02918). The smoothed classifier of a base classifier ``f`` is
``g(x) = argmax_c P(f(x + e) = c)`` with ``e ~ N(0, sigma^2 I)``. If the top class has probability
at least ``pA > 1/2``, ``g`` is constant on the l2 ball of radius ``sigma * Phi^-1(pA)`` (their
Theorem 1 with ``pB = 1 - pA``). ``g`` is estimated by sampling:

* :func:`predict` is the paper's PREDICT: ``n`` votes, the two top classes, a two-sided binomial
  test of ``nA`` out of ``nA + nB`` at ``p = 1/2``; the top class when the p-value is at most
  ``alpha``, else an abstention. It returns a wrong class (one other than ``g(x)``) with
  probability at most ``alpha`` (their Proposition 1).
* :func:`certify` is the paper's CERTIFY: ``n0`` selection votes pick the class ``cA``, ``n``
  fresh estimation votes give the one-sided Clopper-Pearson lower bound ``pA_lower`` at level
  ``1 - alpha``; the radius is ``sigma * Phi^-1(pA_lower)``, an abstention when ``pA_lower <= 1/2``.
  With probability at least ``1 - alpha`` a returned ``(cA, R)`` is right: ``g = cA`` on the
  open l2 ball of radius ``R``.

Noise is added in the model's input space (before its normalization), never clipped to the
bounds, exactly as the paper's code does; a certificate is therefore about ``g`` on all of
``R^d`` and so on every perturbation inside the data bounds too.

The binomial statistics are computed here with numpy and ``math.lgamma`` (the kernel imports no
scipy); ``tests/defenses/test_smoothing.py`` checks them against scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import torch

from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model

#: The class index :func:`predict` and :func:`certify` return for an abstention.
ABSTAIN = -1


def check_smoothing_params(
    *,
    sigma: float,
    n: int,
    alpha: float | None = None,
    n0: int | None = None,
    batch_size: int = 1,
) -> None:
    """Raise :class:`ParameterError` naming the first bad value: ``sigma > 0``, counts ``>= 1``,
    ``0 < alpha < 1`` (``alpha`` and ``n0`` are checked when given)."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ParameterError("sigma", f"{sigma!r} must be a noise level > 0, e.g. sigma=0.25")
    counts = {"n": n, "batch_size": batch_size} | ({} if n0 is None else {"n0": n0})
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(name, f"{value!r} must be a whole number >= 1, e.g. {name}=100")
    if alpha is not None and (
        isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1
    ):
        raise ParameterError("alpha", f"{alpha!r} must be in (0, 1), e.g. alpha=0.001")


def noise_counts(
    model: Model,
    x: torch.Tensor,
    *,
    sigma: float,
    n: int,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Votes of the base classifier under Gaussian noise: counts (N, C) int64, rows summing to n.

    Each ``x[i]`` (N, ...) in input units gets ``n`` draws ``x[i] + e``, ``e ~ N(0, sigma^2 I)``
    (not clipped), fed through ``model`` (its normalization included) in batches of
    ``batch_size``; the vote is the argmax of the logits. ``generator`` (on ``x``'s device)
    makes the draws reproducible.
    """
    check_smoothing_params(sigma=sigma, n=n, batch_size=batch_size)
    rows: list[torch.Tensor] = []
    num_classes = model.num_classes
    with torch.no_grad():
        for i in range(int(x.shape[0])):
            row: torch.Tensor | None = None
            left = n
            while left > 0:
                m = min(batch_size, left)
                base = x[i : i + 1].expand(m, *x.shape[1:])
                noise = torch.randn(base.shape, generator=generator, device=x.device, dtype=x.dtype)
                logits = model.checked(model(base + sigma * noise), n=m)
                classes = num_classes if num_classes is not None else int(logits.shape[1])
                votes = torch.bincount(logits.argmax(dim=1), minlength=classes).cpu()
                row = votes if row is None else row + votes
                left -= m
            assert row is not None
            rows.append(row)
    if not rows:
        return torch.zeros((0, num_classes or 0), dtype=torch.int64)
    return torch.stack(rows).to(torch.int64)


def _log_pmf(k: np.ndarray, n: int, p: float) -> np.ndarray:
    """log P(X = k) for X ~ Binomial(n, p), 0 < p < 1; k an int array in 0..n."""
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))
    out: np.ndarray = (
        log_fact[n] - log_fact[k] - log_fact[n - k] + k * math.log(p) + (n - k) * math.log1p(-p)
    )
    return out


def _log_sum(values: np.ndarray) -> float:
    top = float(values.max())
    return top + math.log(float(np.exp(values - top).sum()))


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return min(1.0, math.exp(_log_sum(_log_pmf(np.arange(k, n + 1), n, p))))


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower confidence bound of a binomial proportion at level 1 - alpha.

    The ``p`` with ``P(X >= k; n, p) = alpha`` (0 for ``k = 0``): with probability at least
    ``1 - alpha`` the true proportion is at least this. Equals the ``alpha`` quantile of
    Beta(k, n - k + 1), which the paper's code gets from statsmodels'
    ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``. Found by bisection to 1e-13.
    """
    if not 0 <= k <= n or n < 1:
        raise ParameterError("k", f"{k!r} successes of {n!r} trials: need 0 <= k <= n, n >= 1")
    if k == 0:
        return 0.0
    if k == n:
        return float(alpha ** (1.0 / n))
    lo, hi = 0.0, 1.0
    while hi - lo > 1e-13:
        mid = (lo + hi) / 2
        if binomial_upper_tail(k, n, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


def binomial_test_half(k: int, n: int) -> float:
    """Two-sided p-value of ``k`` successes in ``n`` trials against ``p = 1/2`` (exact).

    The distribution is symmetric, so this is ``2 * P(X <= min(k, n - k))``, capped at 1; it is
    what scipy's ``binomtest(k, n, 0.5).pvalue`` (the paper's ``binom_test``) gives.
    """
    if not 0 <= k <= n or n < 1:
        raise ParameterError("k", f"{k!r} successes of {n!r} trials: need 0 <= k <= n, n >= 1")
    low = min(k, n - k)
    if 2 * low == n:
        return 1.0
    return min(1.0, 2.0 * math.exp(_log_sum(_log_pmf(np.arange(0, low + 1), n, 0.5))))


def _top_two(counts: torch.Tensor) -> tuple[int, int]:
    order = torch.argsort(counts, descending=True, stable=True).tolist()
    return int(order[0]), int(order[1]) if len(order) > 1 else int(order[0])


def predict_from_counts(counts: torch.Tensor, alpha: float) -> int:
    """PREDICT's decision from one sample's votes (C,): the top class, or :data:`ABSTAIN`."""
    top, second = _top_two(counts)
    n_a = int(counts[top])
    n_b = int(counts[second]) if second != top else 0
    return top if binomial_test_half(n_a, n_a + n_b) <= alpha else ABSTAIN


def predict(
    model: Model,
    x: torch.Tensor,
    *,
    sigma: float,
    n: int,
    alpha: float,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The paper's PREDICT for every ``x[i]`` (N, ...): classes (N,) int64, :data:`ABSTAIN` = -1."""
    check_smoothing_params(sigma=sigma, n=n, alpha=alpha, batch_size=batch_size)
    counts = noise_counts(model, x, sigma=sigma, n=n, batch_size=batch_size, generator=generator)
    return torch.tensor([predict_from_counts(c, alpha) for c in counts], dtype=torch.int64)


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answer for one input.

    Attributes:
        prediction: the class ``cA`` certified, or :data:`ABSTAIN`.
        radius: the certified l2 radius in input units (0 when abstaining).
        p_lower: the Clopper-Pearson lower bound of ``P(f(x + e) = cA)``.
        count: ``nA``, the estimation votes for ``cA`` (of ``n``).
    """

    prediction: int
    radius: float
    p_lower: float
    count: int


def radius_from_bound(p_lower: float, sigma: float) -> float:
    """``sigma * Phi^-1(p_lower)``: the certified l2 radius (Theorem 1 with pB = 1 - pA)."""
    if p_lower <= 0.5:
        return 0.0
    if p_lower >= 1.0:
        return math.inf
    return float(sigma * NormalDist().inv_cdf(p_lower))


def certify(
    model: Model,
    x: torch.Tensor,
    *,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
) -> list[Certificate]:
    """The paper's CERTIFY for every ``x[i]`` (N, ...): separate selection (``n0``) and
    estimation (``n``) votes, Clopper-Pearson at ``1 - alpha``; one :class:`Certificate` each."""
    check_smoothing_params(sigma=sigma, n=n, n0=n0, alpha=alpha, batch_size=batch_size)
    out: list[Certificate] = []
    for i in range(int(x.shape[0])):
        xi = x[i : i + 1]
        select = noise_counts(
            model, xi, sigma=sigma, n=n0, batch_size=batch_size, generator=generator
        )[0]
        top = _top_two(select)[0]
        estimate = noise_counts(
            model, xi, sigma=sigma, n=n, batch_size=batch_size, generator=generator
        )[0]
        n_a = int(estimate[top])
        p_lower = clopper_pearson_lower(n_a, n, alpha)
        if p_lower <= 0.5:
            out.append(Certificate(ABSTAIN, 0.0, p_lower, n_a))
        else:
            out.append(Certificate(top, radius_from_bound(p_lower, sigma), p_lower, n_a))
    return out

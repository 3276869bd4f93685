"""The power law of adversarial error against eps, fitted in log-log space.

**Power law of adversarial error** (Cubuk, Zoph, Schoenholz and Le 2017, arXiv 1711.02846,
card 6a). Adversarial error AE(eps) is fitted as ``log10 AE = a + b log10 eps`` by ordinary
least squares; the exponent ``b`` and the prefactor ``10**a`` (the error extrapolated to
eps = 1) are reported with their standard errors (OLS; the prefactor's by the delta method)
and R^2. Two variants, as the card asks: ``conditional`` (AE = the success rate on the
clean-correct samples, which removes the clean-error floor; the headline fit) and ``all``
(AE = 1 - robust accuracy over all samples). Points used: eps > 0 and ``1/N < AE <= AE_MAX``
(N the samples the variant counts; AE_MAX = 0.3, the card's saturation cut-off); points at
AE = 0 or with a single broken sample (log of zero, and pure counting noise) and saturated
points are left out and listed. At least :data:`MIN_POINTS` points are needed for a fit with
standard errors; the card asks for about 5 over a decade, so ``reliable`` says whether the
fit has :data:`RELIABLE_POINTS` points spanning a decade. Deviation from the card: standard
errors from the OLS fit, not bootstrap intervals over test points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

#: Points with adversarial error above this are saturated and not fitted (card 6a).
AE_MAX = 0.3
#: The fewest points a fit with standard errors takes (two leave no residual degree of freedom).
MIN_POINTS = 3
#: A fit with at least this many points over at least a decade of eps is ``reliable`` (card 6a).
RELIABLE_POINTS = 5


@dataclass(frozen=True)
class PowerLawFit:
    """``AE(eps) ~ prefactor * eps ** exponent``, fitted in log10-log10 space.

    Attributes:
        variant: ``conditional`` (success rate on clean-correct samples) or ``all``.
        exponent, exponent_se: the slope b and its OLS standard error.
        prefactor, prefactor_se: ``10**a`` (the error extrapolated to eps = 1) and its
            standard error by the delta method (``ln 10 * 10**a * se(a)``).
        log10_prefactor, log10_prefactor_se: the intercept a and its standard error.
        r2: coefficient of determination in log space.
        eps_used: the eps of the fitted points, ascending.
        eps_left_out: the eps of the points not fitted (zero error, one broken sample,
            saturated, eps = 0).
        decades: ``log10(max eps_used / min eps_used)``.
        reliable: at least RELIABLE_POINTS points spanning at least one decade.
    """

    variant: str
    exponent: float
    exponent_se: float
    prefactor: float
    prefactor_se: float
    log10_prefactor: float
    log10_prefactor_se: float
    r2: float
    eps_used: tuple[float, ...]
    eps_left_out: tuple[float, ...] = ()

    @property
    def n_points(self) -> int:
        return len(self.eps_used)

    @property
    def decades(self) -> float:
        return math.log10(max(self.eps_used) / min(self.eps_used))

    @property
    def reliable(self) -> bool:
        return self.n_points >= RELIABLE_POINTS and self.decades >= 1.0 - 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "exponent": self.exponent,
            "exponent_se": self.exponent_se,
            "prefactor": self.prefactor,
            "prefactor_se": self.prefactor_se,
            "log10_prefactor": self.log10_prefactor,
            "log10_prefactor_se": self.log10_prefactor_se,
            "r2": self.r2,
            "n_points": self.n_points,
            "decades": self.decades,
            "reliable": self.reliable,
            "eps_used": list(self.eps_used),
            "eps_left_out": list(self.eps_left_out),
        }


def fit_window(eps: Sequence[float], error: Sequence[float | None], n: int) -> list[bool]:
    """Which points a fit may use: ``eps > 0`` and ``1/n < error <= AE_MAX`` (see module doc)."""
    lo = 1.0 / n if n > 0 else math.inf
    return [
        e > 0 and a is not None and math.isfinite(a) and a > lo * (1 + 1e-9) and a <= AE_MAX
        for e, a in zip(eps, error)
    ]


def loglog_fit(
    eps: Sequence[float], error: Sequence[float], *, variant: str = "conditional"
) -> PowerLawFit:
    """OLS of ``log10 error`` on ``log10 eps`` over the given points (all > 0, at least
    MIN_POINTS); raises ValueError otherwise."""
    if len(eps) != len(error) or len(eps) < MIN_POINTS:
        raise ValueError(f"a power-law fit needs at least {MIN_POINTS} points; got {len(eps)}")
    if min(eps) <= 0 or min(error) <= 0:
        raise ValueError("a log-log fit needs eps > 0 and error > 0 at every point")
    xs = [math.log10(e) for e in eps]
    ys = [math.log10(a) for a in error]
    k = len(xs)
    mx, my = sum(xs) / k, sum(ys) / k
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        raise ValueError("a power-law fit needs at least two different eps")
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ssr = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
    sst = sum((y - my) ** 2 for y in ys)
    s2 = ssr / (k - 2)
    se_b = math.sqrt(s2 / sxx)
    se_a = math.sqrt(s2 * (1.0 / k + mx * mx / sxx))
    pre = 10.0**a
    return PowerLawFit(
        variant=variant,
        exponent=b,
        exponent_se=se_b,
        prefactor=pre,
        prefactor_se=math.log(10.0) * pre * se_a,
        log10_prefactor=a,
        log10_prefactor_se=se_a,
        r2=1.0 - ssr / sst if sst > 0 else 1.0,
        eps_used=tuple(eps),
    )


def fit_power_law(
    eps: Sequence[float], error: Sequence[float | None], n: int, *, variant: str = "conditional"
) -> tuple[PowerLawFit | None, str]:
    """The fit over the points in :func:`fit_window` (``n``: samples behind each error), and a
    note: what was left out, or why there is no fit."""
    use = fit_window(eps, error, n)
    used = [(e, float(a)) for e, a, u in zip(eps, error, use) if u and a is not None]
    left = tuple(e for e, u in zip(eps, use) if not u)
    window = f"{len(used)} of {len(eps)} points in the fit window (1/N < AE <= {AE_MAX:g}, N = {n})"
    if len(used) < MIN_POINTS or len({e for e, _ in used}) < 2:
        return None, f"no power-law fit: {window}; it needs {MIN_POINTS} at different eps"
    fit = loglog_fit([e for e, _ in used], [a for _, a in used], variant=variant)
    fit = replace(fit, eps_left_out=left)
    note = window + (
        ""
        if fit.reliable
        else f"; unreliable: card 6a asks >= {RELIABLE_POINTS} points over a decade"
    )
    return fit, note


def fit_text(fit: PowerLawFit) -> str:
    """``AE ~ eps^1.52 +- 0.06 (prefactor 12.3 +- 2.1, R^2 0.99, 6 points over 1.2 decades)``."""
    return (
        f"AE ~ eps^{fit.exponent:.3g} \u00b1 {fit.exponent_se:.2g} (prefactor "
        f"{fit.prefactor:.3g} \u00b1 {fit.prefactor_se:.2g}, R\u00b2 {fit.r2:.3f}, "
        f"{fit.n_points} points over {fit.decades:.1f} decades"
        f"{'' if fit.reliable else ', too few for a reliable fit'})"
    )

"""Certified accuracy of randomized-smoothing certificates: report values and the radius figure.

Certified accuracy at l2 radius ``r`` (Cohen et al. 2019, their Figures and Tables): the
fraction of samples whose certified class is the label with a certified radius above ``r``
(abstentions count as wrong). The ``smoothing`` verifier gives per-sample ``correct``,
``radius`` and ``prediction`` (-1: abstain); the verify check kind and :func:`result_values`
turn them into values here, and the HTML report draws certified accuracy against radius.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robustbench_lite.report.model import CheckResult

#: Points of the certified-accuracy curve drawn per check.
CURVE_POINTS = 101


def certified_accuracy(correct: Sequence[bool], radius: Sequence[float], r: float) -> float:
    """Fraction of samples (N,) certified correct with a radius above ``r``; NaN for none."""
    n = len(correct)
    if not n:
        return float("nan")
    return sum(bool(c) and float(rad) > r for c, rad in zip(correct, radius)) / n


def radius_key(r: float) -> str:
    """The value name of the certified accuracy at radius ``r``: ``certified_accuracy@0.25``."""
    return f"certified_accuracy@{r:g}"


def certified_values(
    correct: Sequence[bool],
    radius: Sequence[float],
    prediction: Sequence[int],
    radii: Sequence[float],
) -> dict[str, Any]:
    """``certified_accuracy@R`` for each radius in ``radii`` and the ``abstain_fraction``."""
    n = len(prediction)
    out: dict[str, Any] = {
        radius_key(float(r)): certified_accuracy(correct, radius, float(r)) for r in radii
    }
    out["abstain_fraction"] = sum(int(p) < 0 for p in prediction) / n if n else float("nan")
    return out


def smoothing_stats_values(stats: Mapping[str, Any], verified_fraction: float) -> dict[str, Any]:
    """The certified values of a verification result whose ``stats`` hold per-sample ``radius``
    (the ``smoothing`` verifier), else nothing. ``certified_accuracy`` is at the threat's eps,
    which is the verified fraction."""
    if "radius" not in stats:
        return {}
    return {
        "certified_accuracy": verified_fraction,
        **certified_values(
            stats["correct"], stats["radius"], stats["prediction"], stats.get("radii", ())
        ),
    }


def curve(correct: Sequence[bool], radius: Sequence[float]) -> list[tuple[float, float]]:
    """(radius, certified accuracy) on a grid from 0 to just past the largest finite radius."""
    finite = [float(r) for r, c in zip(radius, correct) if c and float(r) < float("inf")]
    top = max(finite, default=0.0) * 1.05 or 1.0
    grid = [top * i / (CURVE_POINTS - 1) for i in range(CURVE_POINTS)]
    return [(r, certified_accuracy(correct, radius, r)) for r in grid]


def certified_figure(results: Sequence[CheckResult]) -> bytes | None:
    """PNG of certified accuracy against l2 radius, one line per check with per-sample radii;
    None when no check has them."""
    checks = [r for r in results if "radius" in r.detail and "correct" in r.detail]
    if not checks:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for r in checks:
        points = curve(r.detail["correct"], r.detail["radius"])
        label = str(r.id) if len(str(r.id)) <= 50 else str(r.id)[:49] + "\u2026"
        sigma = r.detail.get("sigma")
        line = ax.plot(
            [p for p, _ in points],
            [a for _, a in points],
            label=f"{label} (sigma {sigma:g})" if isinstance(sigma, (int, float)) else label,
            drawstyle="steps-post",
        )
        radii = [float(x) for x in r.detail.get("radii", ())]
        ax.plot(
            radii,
            [certified_accuracy(r.detail["correct"], r.detail["radius"], x) for x in radii],
            "o",
            color=line[0].get_color(),
        )
    ax.set_xlabel("l2 radius (input units)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()

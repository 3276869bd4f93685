"""Robustness-scaling metrics of a report's eps sweeps: power law, boundary tilting, masking.

A *sweep* is every attack check of a report with the same attack, parameters, norm, goal,
defense and samples at :data:`MIN_SWEEP_EPS` (three) or more distinct eps (a suite's
``eps: [...]`` list, or separate checks). Fewer eps are no sweep and get no scaling section: a
power law needs :data:`~robustbench_lite.report.power_law.MIN_POINTS` points, so two checks
(``builtin:snn``'s SDA at l0:20 and l0:4624) could never be fitted, and two points say nothing
about a trend that the table does not already show.
For each sweep the report carries (``Report.to_dict()["scaling"]``, and a section in the
table, md and html formats):

* the power-law fit of adversarial error against eps, in two variants (success rate on the
  clean-correct samples, the headline; error over all samples), with standard errors
  (Cubuk et al. 2017; :mod:`robustbench_lite.report.power_law`);
* the median boundary-tilting deviation angle at each eps (Tanay and Griffin 2016), from the
  per-sample angles the attack cells record (:mod:`robustbench_lite.report.scaling_inputs`);
* the masking flags (:mod:`robustbench_lite.report.masking`).

Everything here is derived from the merged check results, so every format and every face
shows the same numbers, and a report re-rendered from its checks gives the same section.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from robustbench_lite.report.masking import (
    FLAGS,
    MaskingFlag,
    attack_warning,
    black_box_beats,
    loss_not_increasing,
    non_monotone,
    unbounded_not_zero,
)
from robustbench_lite.report.power_law import MIN_POINTS, PowerLawFit, fit_power_law, fit_text

if TYPE_CHECKING:
    from robustbench_lite.report.model import CheckResult

#: The fewest distinct eps that make a sweep: as many as a power-law fit takes.
MIN_SWEEP_EPS = MIN_POINTS


@dataclass(frozen=True)
class SweepPoint:
    """One check of a sweep: its eps and what the scaling metrics read from it."""

    eps: float
    check: str
    n: int
    clean_accuracy: float
    robust_accuracy: float
    success_rate: float | None
    adversarial_loss: float | None = None
    tilt_angle_deg: float | None = None
    eps_limit: float | None = None
    warning: bool = False

    @property
    def clean_correct(self) -> int:
        return int(round(self.clean_accuracy * self.n))

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps": self.eps,
            "check": self.check,
            "n": self.n,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "adversarial_error": 1.0 - self.robust_accuracy,
            "success_rate": self.success_rate,
            "adversarial_loss": self.adversarial_loss,
            "tilt_angle_deg": self.tilt_angle_deg,
        }


@dataclass(frozen=True)
class Sweep:
    """The scaling metrics of one eps sweep (see module doc)."""

    component: str | None
    norm: str
    goal: str
    defense: str | None
    params: Mapping[str, Any]
    points: tuple[SweepPoint, ...]
    fit: PowerLawFit | None = None
    fit_note: str = ""
    fit_all: PowerLawFit | None = None
    flags: tuple[MaskingFlag, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        extra = [self.norm]
        if self.goal != "untargeted":
            extra.append(self.goal)
        if self.defense:
            extra.append(self.defense)
        return f"{self.component} ({', '.join(extra)})"

    @property
    def eps(self) -> tuple[float, ...]:
        return tuple(p.eps for p in self.points)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "component": self.component,
            "norm": self.norm,
            "goal": self.goal,
            "defense": self.defense,
            "params": dict(self.params),
            "points": [p.to_dict() for p in self.points],
            "power_law": self.fit.to_dict() if self.fit else None,
            "power_law_all": self.fit_all.to_dict() if self.fit_all else None,
            "fit_note": self.fit_note,
            "masking_flags": [f.to_dict() for f in self.flags],
        }


def _group_key(r: CheckResult) -> tuple[Any, ...]:
    d = r.detail
    params = json.dumps(d.get("params") or {}, sort_keys=True, default=str)
    return (r.component, d.get("norm"), d.get("goal"), d.get("defense"), params, d.get("n"))


def _is_point(r: CheckResult) -> bool:
    d = r.detail
    return (
        isinstance(r.values.get("robust_accuracy"), (int, float))
        and isinstance(r.values.get("clean_accuracy"), (int, float))
        and isinstance(d.get("eps"), (int, float))
        and isinstance(d.get("n"), int)
        and d.get("norm") is not None
    )


def _point(r: CheckResult) -> SweepPoint:
    s = r.detail.get("scaling") or {}
    rate = r.values.get("success_rate")
    return SweepPoint(
        eps=float(r.detail["eps"]),
        check=r.id,
        n=int(r.detail["n"]),
        clean_accuracy=float(r.values["clean_accuracy"]),
        robust_accuracy=float(r.values["robust_accuracy"]),
        success_rate=float(rate)
        if isinstance(rate, (int, float)) and math.isfinite(rate)
        else None,
        adversarial_loss=s.get("adversarial_loss"),
        tilt_angle_deg=s.get("tilt_angle_deg"),
        eps_limit=s.get("eps_limit"),
        warning=r.values.get("warning") is True,
    )


def sweeps(results: Sequence[CheckResult]) -> list[Sweep]:
    """Every eps sweep among ``results`` (at least :data:`MIN_SWEEP_EPS` distinct eps, same
    attack/params/norm/goal/defense/samples), in the order of their first check, with fits and
    masking flags. Checks at fewer distinct eps form no sweep (they stay ordinary rows)."""
    groups: dict[tuple[Any, ...], list[CheckResult]] = defaultdict(list)
    for r in results:
        if _is_point(r):
            groups[_group_key(r)].append(r)
    out = []
    for members in groups.values():
        by_eps: dict[float, CheckResult] = {}
        for r in members:
            by_eps.setdefault(float(r.detail["eps"]), r)  # a repeated eps: the first check
        if len(by_eps) < MIN_SWEEP_EPS:
            continue
        first = members[0]
        points = tuple(_point(by_eps[e]) for e in sorted(by_eps))
        out.append(_analyse(first, points, results))
    return out


def _analyse(
    first: CheckResult, points: tuple[SweepPoint, ...], results: Sequence[CheckResult]
) -> Sweep:
    d = first.detail
    eps = [p.eps for p in points]
    n = points[0].n
    cc = min(p.clean_correct for p in points)
    fit, note = fit_power_law(eps, [p.success_rate for p in points], cc, variant="conditional")
    fit_all, _ = fit_power_law(eps, [1.0 - p.robust_accuracy for p in points], n, variant="all")
    flags = non_monotone(eps, [p.robust_accuracy for p in points], n)
    if d.get("goal") == "untargeted":
        flags += loss_not_increasing(eps, [p.adversarial_loss for p in points])
        flags += unbounded_not_zero(
            eps, [p.robust_accuracy for p in points], [p.eps_limit for p in points]
        )
    if "queries" not in first.values:  # a gradient attack: compare with black-box peers
        flags += _black_box_flags(first, points, results)
    flags.sort(key=lambda f: (FLAGS.index(f.name), f.eps))
    return Sweep(
        component=first.component,
        norm=str(d.get("norm")),
        goal=str(d.get("goal")),
        defense=d.get("defense"),
        params=dict(d.get("params") or {}),
        points=points,
        fit=fit,
        fit_note=note,
        fit_all=fit_all,
        flags=tuple(flags),
    )


def _black_box_flags(
    first: CheckResult, points: tuple[SweepPoint, ...], results: Sequence[CheckResult]
) -> list[MaskingFlag]:
    """Points where a black-box check (one counting queries) at the same threat, defense and
    samples beat every gradient check there (this one included), or the attack warned."""
    d = first.detail
    same = (d.get("norm"), d.get("goal"), d.get("defense"), d.get("n"))
    out = []
    for p in points:
        if p.warning:
            out.append(attack_warning(p.eps, None))
            continue
        peers = [
            r
            for r in results
            if _is_point(r)
            and (r.detail.get("norm"), r.detail.get("goal"))
            + (r.detail.get("defense"), r.detail.get("n"))
            == same
            and float(r.detail["eps"]) == p.eps
        ]
        black = [r for r in peers if "queries" in r.values]
        if not black:
            continue
        white = min(
            [p.robust_accuracy]
            + [float(r.values["robust_accuracy"]) for r in peers if "queries" not in r.values]
        )
        best = min(black, key=lambda r: float(r.values["robust_accuracy"]))
        flag = black_box_beats(
            p.eps, white, float(best.values["robust_accuracy"]), str(best.component), p.n
        )
        if flag:
            out.append(flag)
    return out


def scaling_dicts(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """Every sweep of ``results`` as JSON-ready dicts (the report's ``scaling`` section)."""
    return [s.to_dict() for s in sweeps(results)]


def scaling_lines(results: Sequence[CheckResult]) -> list[str]:
    """One summary line per sweep, then one line per masking flag (for text reports)."""
    lines = []
    for s in sweeps(results):
        tilts = [p.tilt_angle_deg for p in s.points if p.tilt_angle_deg is not None]
        tilt = f"; tilt angle {min(tilts):.1f}-{max(tilts):.1f} deg" if tilts else ""
        fit = fit_text(s.fit) if s.fit else s.fit_note
        flags = ", ".join(sorted({f.name for f in s.flags})) or "none"
        lines.append(
            f"scaling {s.label}, {len(s.points)} eps {min(s.eps):g}..{max(s.eps):g}: {fit}{tilt}; "
            f"masking flags: {flags}"
        )
        lines += [f"  masking {f.name} at eps {f.eps:g}: {f.text}" for f in s.flags]
    return lines

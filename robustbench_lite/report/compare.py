"""Compare a report with a baseline report JSON: per-check changes and a regression gate.

``--compare BASELINE.json`` prints the change of every metric per check;
``--compare-fail robust_accuracy:0.02`` (pytest: ``--rb-compare-fail``) fails when a metric got
worse by more than the given amount (for accuracies "worse" is lower, for success and
falsified rates it is higher).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.report.model import SCHEMA, Report

LOWER_IS_BETTER = frozenset(
    {"success_rate", "falsified_fraction", "unknown_fraction", "soundness_violations"}
)


@dataclass(frozen=True)
class Change:
    """One metric of one check in the baseline and now."""

    check: str
    metric: str
    baseline: float
    current: float

    @property
    def delta(self) -> float:
        return self.current - self.baseline

    @property
    def worsening(self) -> float:
        """How much worse it got (positive = worse)."""
        return self.delta if self.metric in LOWER_IS_BETTER else -self.delta


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A report JSON written by robustbench_lite (checked to follow the schema)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise RobustbenchLiteError(
            f"baseline report {p} does not exist; write one with --report {p}"
        )
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RobustbenchLiteError(
            f"baseline report {p} is not JSON ({exc}); pass a report written with --report"
        ) from None
    if (
        not isinstance(doc, dict)
        or doc.get("schema") != SCHEMA
        or not isinstance(doc.get("checks"), list)
    ):
        raise RobustbenchLiteError(
            f"baseline report {p} is not a {SCHEMA} report; pass one written with --report"
        )
    return doc


def changes(report: Report, baseline: dict[str, Any]) -> list[Change]:
    """Numeric metrics present in both, per check id found in both."""
    base = {c.get("id"): c.get("values", {}) for c in baseline["checks"] if isinstance(c, dict)}
    out = []
    for r in report.results:
        old = base.get(r.id)
        if not isinstance(old, dict):
            continue
        for key, value in r.values.items():
            before = old.get(key)
            if _number(value) and _number(before):
                out.append(Change(r.id, key, float(before), float(value)))  # type: ignore[arg-type]
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_fail_spec(spec: str) -> dict[str, float]:
    """``"robust_accuracy:0.02,clean_accuracy:0.01"`` -> thresholds by metric."""
    out = {}
    for part in spec.split(","):
        metric, sep, amount = part.strip().partition(":")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not metric or value < 0:
            raise RobustbenchLiteError(
                f"compare-fail {spec!r}: write METRIC:AMOUNT, e.g. robust_accuracy:0.02"
            )
        out[metric] = value
    return out


def regressions(found: list[Change], thresholds: dict[str, float]) -> list[Change]:
    """Changes worse than their metric's threshold."""
    return [
        c for c in found if c.metric in thresholds and c.worsening > thresholds[c.metric] + 1e-12
    ]


def change_table(found: list[Change]) -> str:
    """A plain-text table of changes."""
    rows = [("check", "metric", "baseline", "current", "change")]
    rows += [
        (c.check, c.metric, f"{c.baseline:.4f}", f"{c.current:.4f}", f"{c.delta:+.4f}")
        for c in found
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

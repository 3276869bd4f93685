"""Compare a report with a baseline report JSON: per-check changes and a regression gate.

``--compare BASELINE.json`` prints the change of every metric per check;
``--compare-fail robust_accuracy:0.02`` (pytest: ``--rb-compare-fail``) fails when a metric got
worse by more than the given amount (for accuracies "worse" is lower, for success and
falsified rates it is higher).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lite.core.errors import RobustbenchLiteError, did_you_mean
from robustbench_lite.report.model import SCHEMA, Report
from robustbench_lite.report.values import REPORT_METRICS

#: A report JSON is kilobytes to a few megabytes; a baseline larger than this is not one.
MAX_BASELINE_BYTES = 256 * 1024 * 1024

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
    try:
        exists, size = p.exists(), (p.stat().st_size if p.is_file() else 0)
    except OSError as exc:  # a name too long, a folder we may not enter
        raise RobustbenchLiteError(
            f"baseline report {p} cannot be read ({exc.strerror or exc}); pass a report JSON "
            "written with --report BASELINE.json"
        ) from None
    if not exists:
        raise RobustbenchLiteError(
            f"baseline report {p} does not exist; write one with --report BASELINE.json "
            "on an earlier run and pass that file"
        )
    if not p.is_file():  # a folder, a device (/dev/zero), a FIFO: never read
        raise RobustbenchLiteError(
            f"baseline report {p} is not a regular file; pass a report JSON written with "
            "--report BASELINE.json"
        )
    if size > MAX_BASELINE_BYTES:
        raise RobustbenchLiteError(
            f"baseline report {p} is {size} bytes, more than a report can be "
            f"({MAX_BASELINE_BYTES} bytes); pass a report JSON written with --report"
        )
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # JSON, UTF-8, nesting, unreadable
        raise RobustbenchLiteError(
            f"baseline report {p} is not a readable JSON report ({type(exc).__name__}: "
            f"{str(exc)[:100]}); pass a report written with --report"
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


def parse_fail_spec(spec: str, *, known: Iterable[str] = ()) -> dict[str, float]:
    """``"robust_accuracy:0.02,clean_accuracy:0.01"`` -> thresholds by metric.

    Each metric must be a report metric (:func:`metric_names`, plus ``known``: e.g. the value
    names of the baseline, see :func:`baseline_metrics`), so a typo cannot switch the gate
    off; each amount must be a finite number >= 0 (``nan`` would never compare as worse)."""
    out: dict[str, float] = {}
    names: list[str] | None = None
    for part in spec.split(","):
        metric, sep, amount = part.strip().partition(":")
        metric = metric.strip()
        if not sep or not metric:
            raise RobustbenchLiteError(
                f"compare-fail {_short(spec)}: write METRIC:AMOUNT, e.g. robust_accuracy:0.02"
            )
        try:
            value = float(amount)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise RobustbenchLiteError(
                f"compare-fail {_short(part.strip())}: the amount {_short(amount.strip())} must "
                f"be a finite number >= 0, e.g. {metric}:0.02"
            )
        if names is None:
            names = sorted({*metric_names(), *known})
        if metric not in names:
            raise RobustbenchLiteError(
                f"compare-fail {_short(part.strip())}: unknown metric {_short(metric)}"
                f"{did_you_mean(metric, names) or ''}; the metrics are {', '.join(names)}"
            )
        out[metric] = value
    return out


def metric_names() -> list[str]:
    """Every metric a report can hold: the values of :mod:`robustbench_lite.report.values`,
    plus the ``metric_names`` every registered component declares."""
    from robustbench_lite.core.registry import REGISTRIES

    names = set(REPORT_METRICS)
    for registry in REGISTRIES.values():
        for name in registry.names():
            declared = getattr(registry.get(name), "metric_names", ())
            names.update(m for m in declared if isinstance(m, str))
    return sorted(names)


def baseline_metrics(baseline: dict[str, Any]) -> set[str]:
    """The numeric value names of a baseline report (what ``--compare-fail`` can gate on)."""
    return {
        str(key)
        for check in baseline.get("checks", [])
        if isinstance(check, dict) and isinstance(check.get("values"), dict)
        for key, value in check["values"].items()
        if _number(value)
    }


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...")


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

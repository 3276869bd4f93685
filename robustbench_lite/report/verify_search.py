"""How a verifier searched: per-sample statistics summed over the samples of a verify check.

The ``complete`` verifier gives each sample's statistics in ``VerificationResult.stats
["per_sample"]`` (a dict per sample: ``method`` that decided it, ``domains`` of ReLU branch
and bound or ``boxes`` of input splitting, seconds ``time_<phase>_s`` in the attack,
falsification, bounds and z3, ``z3_leaves``, ...). :func:`search_summary` sums them;
:func:`search_lines` prints one line per check under the table and in Markdown.

They depend on wall time (the portfolio's time slices, deadlines), so they are detail under
``timing``, which :func:`robustbench_lite.report.formats.comparable` leaves out, never values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robustbench_lite.report.model import CheckResult

#: Phases whose seconds (``time_<phase>_s``) the line prints, in this order.
PHASES: tuple[str, ...] = ("attack", "falsify", "bounds", "z3")


def search_summary(per_sample: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Sums of the per-sample statistics ``per_sample`` (N dicts): ``samples``, ``methods``
    (method -> samples it decided), ``domains`` (ReLU domains plus input boxes), ``z3_leaves``
    and seconds per phase ``time_<phase>_s`` (``time_s``: the samples' total); empty for
    statistics without a ``method`` (a verifier that keeps none)."""
    rows = [s for s in per_sample if isinstance(s, Mapping) and "method" in s]
    if not rows:
        return {}
    out: dict[str, Any] = {
        "samples": len(rows),
        "methods": dict(sorted(Counter(str(s["method"]) for s in rows).items())),
        "domains": sum(_count(s, "domains") + _count(s, "boxes") for s in rows),
        "z3_leaves": sum(_count(s, "z3_leaves") for s in rows),
    }
    times = sorted({k for s in rows for k in s if k.startswith("time_") and k.endswith("_s")})
    for key in times:
        out[key] = round(sum(_seconds(s.get(key)) for s in rows), 4)
    return out


def search_text(summary: Mapping[str, Any]) -> str:
    """``summary`` in words: "20 samples: falsify 3, input_split 17; 5230 domains, 4 z3 leaves;
    seconds: attack 1.2, bounds 3.4 (total 9.8)"; empty for an empty summary."""
    if not summary:
        return ""
    methods = ", ".join(f"{m} {n}" for m, n in summary.get("methods", {}).items())
    parts = [f"{summary.get('samples', 0)} samples: {methods}"]
    parts.append(f"{summary.get('domains', 0)} domains, {summary.get('z3_leaves', 0)} z3 leaves")
    seconds = [f"{p} {summary[f'time_{p}_s']:.2f}" for p in PHASES if f"time_{p}_s" in summary]
    if seconds or "time_s" in summary:
        total = f" (total {summary['time_s']:.2f})" if "time_s" in summary else ""
        parts.append(f"seconds: {', '.join(seconds) or '-'}{total}")
    return "; ".join(parts)


def search_lines(results: Sequence[CheckResult]) -> list[str]:
    """One line ``<check id>: search over <text>`` per check whose detail holds a summary."""
    lines = []
    for r in results:
        timing = r.detail.get("timing")
        summary = timing.get("search") if isinstance(timing, Mapping) else None
        text = search_text(summary) if isinstance(summary, Mapping) else ""
        if text:
            lines.append(f"{r.id}: search over {text}")
    return lines


def _count(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0

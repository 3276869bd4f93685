"""Merging cell payloads (by sample index) into CheckResults, and the soundness cross-check."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from robustbench_lite.report import CheckResult
from robustbench_lite.runner_cells import Cell
from robustbench_lite.suite_model import Check
from robustbench_lite.types import Goal, Norm

log = logging.getLogger(__name__)


def merge_check(check: Check, cells: Sequence[tuple[Cell, Mapping[str, Any]]]) -> CheckResult:
    """One check's result from its cells (any order in; merged in sample order)."""
    cells = sorted(cells, key=lambda c: c[0].shard)
    values, extra = _MERGERS[check.kind](cells)
    values = {k: v for k, v in values.items() if v is not None}
    passed = all(e.holds(values.get(e.metric)) for e in check.expect)
    threat = check.threat
    detail: dict[str, Any] = {
        "n": sum(c.stop - c.start for c, _ in cells),
        "params": dict(check.params),
        "defense": check.defense.name if check.defense else None,
        "cells": [{"shard": c.shard, "start": c.start, "stop": c.stop, "elapsed_s": round(p["elapsed_s"], 4),
                   **_cell_values(check.kind, p)} for c, p in cells],  # fmt: skip
        **extra,
    }
    if threat is not None:
        detail.update(norm=threat.norm.value, eps=threat.eps, goal=threat.goal.value)
    failed = [e for e in check.expect if not e.holds(values.get(e.metric))]
    if failed:
        detail["failed"] = [f"{e.metric} = {_show(values.get(e.metric))}, expected {str(e)[len(e.metric) + 1:]}"
                            for e in failed]  # fmt: skip
    return CheckResult(
        id=check.id, kind=check.kind, component=check.component,
        threat=threat.name if threat else None, passed=passed, values=values,
        expect=tuple(str(e) for e in check.expect),
        elapsed_s=sum(p["elapsed_s"] for _, p in cells), detail=detail,
    )  # fmt: skip


def _show(value: Any) -> str:
    return "nothing" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


def _flat(cells: Sequence[tuple[Cell, Mapping[str, Any]]], key: str) -> list[Any]:
    return [v for _, p in cells for v in p[key]]


def _mean(values: Sequence[Any]) -> float:
    return sum(bool(v) for v in values) / len(values) if values else float("nan")


def _cell_values(kind: str, p: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "clean":
        return {"clean_accuracy": _mean(p["clean_correct"])}
    if kind == "attack":
        cc, ok = p["clean_correct"], p["success"]
        return {"clean_accuracy": _mean(cc), "robust_accuracy": _mean([c and not s for c, s in zip(cc, ok)])}
    if kind == "verify":
        return {"verified_fraction": _mean([s == "verified" for s in p["status"]])}
    return {}


def _clean(cells: Sequence[tuple[Cell, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"clean_accuracy": _mean(_flat(cells, "clean_correct"))}, {}


def _attack(cells: Sequence[tuple[Cell, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    cc, ok = _flat(cells, "clean_correct"), _flat(cells, "success")
    n_cc = sum(bool(c) for c in cc)
    values: dict[str, Any] = {
        "clean_accuracy": _mean(cc),
        "robust_accuracy": _mean([c and not s for c, s in zip(cc, ok)]),
        "success_rate": sum(bool(c and s) for c, s in zip(cc, ok)) / n_cc if n_cc else float("nan"),
    }
    sizes = [c.stop - c.start for c, _ in cells]
    queries = [p.get("queries") for _, p in cells]
    if all(q is not None for q in queries):
        values["queries"] = sum(float(q or 0) * s for q, s in zip(queries, sizes)) / sum(sizes)
    extra: dict[str, Any] = {"success": [bool(s) for s in ok]}
    for key in sorted({k for _, p in cells for k in p.get("metrics", {})}):
        pairs = [(p["metrics"][key], s) for (_, p), s in zip(cells, sizes) if key in p.get("metrics", {})]
        if is_timing(key):  # wall times vary run to run: detail, not values
            extra.setdefault("timing", {})[key] = merge_metric(key, pairs)
        else:
            values[key] = merge_metric(key, pairs)
    for _, p in cells:
        if "examples" in p:
            extra["examples"] = p["examples"]
    others = [p["other_metrics"] for _, p in cells if p.get("other_metrics")]
    if others:
        extra["metrics_per_cell"] = others
    return values, extra


def is_timing(key: str) -> bool:
    """Metric names that are wall times (``seconds_*``, ``*_s``, ``*elapsed*``)."""
    return key.startswith("seconds") or key.endswith("_s") or "elapsed" in key


def merge_metric(key: str, pairs: list[tuple[Any, int]]) -> Any:
    """One attack metric over cells: flags -> any, counts and ``seconds*`` -> sum, else the
    mean weighted by cell size (fractions such as ``loss_not_increased``)."""
    vals = [v for v, _ in pairs]
    if all(isinstance(v, bool) for v in vals):
        return any(vals)
    if key.startswith("seconds") or all(isinstance(v, int) for v in vals):
        return sum(vals)
    return sum(float(v) * s for v, s in pairs) / sum(s for _, s in pairs)


def _verify(cells: Sequence[tuple[Cell, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    status = _flat(cells, "status")
    values = {
        "verified_fraction": _mean([s == "verified" for s in status]),
        "falsified_fraction": _mean([s == "falsified" for s in status]),
        "unknown_fraction": _mean([s == "unknown" for s in status]),
        "soundness_violations": 0,
    }
    reasons = {str(c.start + int(i)): r for c, p in cells for i, r in p.get("reasons", {}).items()}
    return values, {"status": status, "reasons": reasons}


def _detect(cells: Sequence[tuple[Cell, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    p = cells[0][1]
    return {"flagged": p["flagged"], "score": p["score"]}, {"threshold": p["threshold"], "evidence": p["evidence"]}


_MERGERS = {"clean": _clean, "attack": _attack, "verify": _verify, "detect": _detect}


def soundness_check(checks: Mapping[str, Check], results: list[CheckResult]) -> list[CheckResult]:
    """Fail every verify check that VERIFIED a sample some attack broke inside its threat set.

    An attack check is comparable when it uses the same defense and modality, an untargeted goal
    on both sides, and a ball inside the verified one (same norm, or l1 in l2 in linf, with an
    eps no larger): then a sample cannot be both VERIFIED and broken.
    """
    by_id = {r.id: r for r in results}
    out = []
    for r in results:
        check = checks[r.id]
        bad: dict[str, list[int]] = {}
        if check.kind == "verify" and check.threat is not None:
            for other in checks.values():
                if _comparable(check, other):
                    status, success = r.detail["status"], by_id[other.id].detail["success"]
                    hits = [i for i, (s, a) in enumerate(zip(status, success)) if s == "verified" and a]
                    if hits:
                        bad[other.id] = hits
        if bad:
            count = len({i for hits in bad.values() for i in hits})
            message = (f"SOUNDNESS BUG: {check.component} VERIFIED {count} sample(s) that attacks broke inside "
                       f"the verified set: {bad}")  # fmt: skip
            log.error("%s: %s", r.id, message)
            values = {**r.values, "soundness_violations": count}
            detail = {**r.detail, "soundness": message, "soundness_violations": bad}
            r = CheckResult(r.id, r.kind, r.component, r.threat, False, values, r.expect, r.elapsed_s, detail)
        out.append(r)
    return out


def _comparable(v: Check, a: Check) -> bool:
    if a.kind != "attack" or a.threat is None or v.threat is None:
        return False
    tv, ta = v.threat, a.threat
    same_defense = (v.defense.name if v.defense else None) == (a.defense.name if a.defense else None)
    inside = tv.norm == ta.norm or (ta.norm in _NESTED and tv.norm in _NESTED and _NESTED[ta.norm] < _NESTED[tv.norm])
    return (same_defense and inside and tv.modality == ta.modality
            and tv.goal is Goal.UNTARGETED and ta.goal is Goal.UNTARGETED and ta.eps <= tv.eps + 1e-12)  # fmt: skip


#: Balls of one radius nest l1 inside l2 inside linf (|d|_inf <= |d|_2 <= |d|_1).
_NESTED = {Norm.L1: 0, Norm.L2: 1, Norm.LINF: 2}

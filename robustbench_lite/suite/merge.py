"""Merging cell payloads (by sample index) into CheckResults, and the kinds' cross-checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from robustbench_lite.report.model import CheckResult
from robustbench_lite.suite.kinds import CellPayload, all_kinds, check_kind
from robustbench_lite.suite.model_spec import Check


def merge_check(check: Check, cells: Sequence[CellPayload], *, reused: bool = False) -> CheckResult:
    """One check's result from its cells (any order in; merged in sample order); ``reused``:
    every cell came from the results store."""
    cells = sorted(cells, key=lambda c: c[0].shard)
    kind = check_kind(check.kind)
    values, extra = kind.merge(cells)
    values = {k: v for k, v in values.items() if v is not None}
    passed = all(e.holds(values.get(e.metric)) for e in check.expect)
    threat = check.threat
    detail: dict[str, Any] = {
        "n": sum(c.stop - c.start for c, _ in cells),
        "params": dict(check.params),
        "defense": check.defense.name if check.defense else None,
        "cells": [
            {
                "shard": c.shard,
                "start": c.start,
                "stop": c.stop,
                "elapsed_s": round(p["elapsed_s"], 4),
                **kind.cell_values(p),
            }
            for c, p in cells
        ],
        **extra,
    }
    if threat is not None:
        detail.update(norm=threat.norm.value, eps=threat.eps, goal=threat.goal.value)
    failed = [e for e in check.expect if not e.holds(values.get(e.metric))]
    if failed:
        detail["failed"] = [
            f"{e.metric} = {_show(values.get(e.metric))}, expected {str(e)[len(e.metric) + 1 :]}"
            for e in failed
        ]
    return CheckResult(
        id=check.id,
        kind=check.kind,
        component=check.component,
        threat=threat.name if threat else None,
        passed=passed,
        values=values,
        expect=tuple(str(e) for e in check.expect),
        elapsed_s=sum(p["elapsed_s"] for _, p in cells),
        detail=detail,
        reused=reused,
    )


def cross_check(checks: Mapping[str, Check], results: list[CheckResult]) -> list[CheckResult]:
    """Every kind's cross-check over the merged results (the verify kind's soundness check)."""
    for kind in all_kinds():
        results = kind.cross_check(checks, results)
    return results


def _show(value: Any) -> str:
    return (
        "nothing" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
    )

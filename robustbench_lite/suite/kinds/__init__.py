"""Check kinds: one object per kind of check (clean, attack, verify, detect).

Each module of this package defines and registers one kind (see ``base.CheckKind``): its YAML
key and parameters, its threat rule, the values its expectations may name, how a cell of it
runs, how its cells merge into report values, and its cross-checks. The suite's parser, runner
and merge only call the kind's methods, so adding a check kind is one new module here.
"""

from __future__ import annotations

import time
from typing import Any

from robustbench_lite.core.types import index_inputs
from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.kinds.base import (
    CellPayload,
    CheckKind,
    all_kinds,
    check_kind,
    register_kind,
)

__all__ = ["CellPayload", "CheckKind", "all_kinds", "check_kind", "register_kind", "run_cell"]


def run_cell(ctx: CellContext, cell: Cell) -> dict[str, Any]:
    """Compute one cell; returns its JSON-ready payload with ``elapsed_s`` (seconds) added."""
    check = ctx.checks[cell.check_id]
    model = ctx.model_for(check.defense)
    x = index_inputs(ctx.x, slice(cell.start, cell.stop))  # a tensor or a mapping of them
    y = ctx.y[cell.start : cell.stop]
    start = time.perf_counter()
    payload = check_kind(check.kind).run_cell(ctx, check, cell, model, x, y)
    payload["elapsed_s"] = time.perf_counter() - start
    return payload

"""The ``local`` executor: cells run one after another in this process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.executors.base import Executor, register_executor
from robustbench_lite.suite.kinds import run_cell


class LocalExecutor(Executor):
    """In this process, in order (the default; no pickling)."""

    name = "local"

    def run(
        self,
        ctx: CellContext,
        cells: Sequence[Cell],
        *,
        workers: int | None,
        address: str | None,
    ) -> Iterator[tuple[Cell, dict[str, Any]]]:
        return ((cell, run_cell(ctx, cell)) for cell in cells)


register_executor(LocalExecutor())

"""Executors run cells: ``local`` (in this process), ``process`` (a worker pool), ``ray``.

Each yields ``(cell, payload)`` pairs as cells finish, in any order; the runner stores each
at once and merges by sample index, so every executor gives the same report. Workers compute
only; the parent process alone writes the results store.

Executors are a catalog on the entry-point group ``robustbench_lite.executors``: a third party
adds one by registering an :class:`Executor` instance from a module of that group.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from robustbench_lite.core.errors import ExecutorError, RegistryError
from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.executors.base import EXECUTORS, Executor, register_executor

__all__ = ["EXECUTORS", "Executor", "executor_names", "preflight", "register_executor", "run_cells"]


def executor_names() -> list[str]:
    """The registered executors, sorted."""
    return EXECUTORS.names()


def preflight(name: str, address: str | None = None) -> None:
    """Cheap checks before any model work: a known executor, its dependencies and cluster."""
    _executor(name).preflight(address)


def run_cells(
    name: str,
    ctx: CellContext,
    cells: Sequence[Cell],
    *,
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[tuple[Cell, dict[str, Any]]]:
    """Run ``cells`` on executor ``name``; yields each cell's payload as it finishes."""
    executor = _executor(name)
    if not cells:
        return iter(())
    return executor.run(ctx, cells, workers=workers, address=address)


def _executor(name: str) -> Executor:
    try:
        return EXECUTORS.get(name)
    except RegistryError as exc:
        raise ExecutorError(str(exc)) from None

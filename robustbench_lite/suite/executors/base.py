"""The executor interface, and what the pool executors share (worker count, pickled context)."""

from __future__ import annotations

import os
import pickle
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from robustbench_lite.core.errors import ExecutorError
from robustbench_lite.core.registry import Catalog
from robustbench_lite.suite.cells import Cell, CellContext


class Executor(ABC):
    """Runs cells somewhere; ``name`` is what ``--executor`` takes."""

    name: ClassVar[str]

    def preflight(self, address: str | None) -> None:
        """Fail before any model work when this executor cannot start (default: it always can)."""
        return None

    @abstractmethod
    def run(
        self,
        ctx: CellContext,
        cells: Sequence[Cell],
        *,
        workers: int | None,
        address: str | None,
    ) -> Iterator[tuple[Cell, dict[str, Any]]]:
        """Yield ``(cell, payload)`` for every cell, in any order, as each finishes."""

    def __eq__(self, other: object) -> bool:  # re-importing the module is not a name clash
        return type(other).__qualname__ == type(self).__qualname__

    def __hash__(self) -> int:
        return hash(type(self).__qualname__)


EXECUTORS: Catalog[Executor] = Catalog(
    "executor", "robustbench_lite.executors", hint="choose one with --executor"
)


def register_executor(executor: Executor) -> Executor:
    """Add ``executor`` under its ``name`` (called by the module that defines it)."""
    return EXECUTORS.add(executor.name, executor)


def default_workers(workers: int | None, n_cells: int) -> int:
    """Worker processes: ``workers`` or all cores, never more than there are cells."""
    return max(1, min(workers or (os.cpu_count() or 1), n_cells))


def pickled(ctx: CellContext) -> bytes:
    """The cell context as bytes for another process; a clear error when the model cannot go."""
    try:
        return pickle.dumps(ctx, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RuntimeError) as exc:
        raise ExecutorError(
            f"the model cannot be sent to worker processes ({type(exc).__name__}: {exc}); "
            "use --executor local, or a model whose class is importable"
        ) from None

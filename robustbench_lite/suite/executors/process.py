"""The ``process`` executor: a pool of ``spawn`` worker processes on this machine."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.executors.base import (
    Executor,
    default_workers,
    pickled,
    register_executor,
)
from robustbench_lite.suite.kinds import run_cell

# Each worker unpickles the context once, in its initializer, and keeps it for its cells.
_WORKER_CTX: CellContext | None = None


def _init_worker(blob: bytes, threads: int) -> None:
    import torch

    global _WORKER_CTX
    torch.set_num_threads(threads)
    _WORKER_CTX = pickle.loads(blob)  # noqa: S301 - our own context, pickled by the parent


def _worker_cell(cell: Cell) -> dict[str, Any]:
    assert _WORKER_CTX is not None
    return run_cell(_WORKER_CTX, cell)


class ProcessExecutor(Executor):
    """Worker processes (``spawn``), the context pickled once per worker."""

    name = "process"

    def run(
        self,
        ctx: CellContext,
        cells: Sequence[Cell],
        *,
        workers: int | None,
        address: str | None,
    ) -> Iterator[tuple[Cell, dict[str, Any]]]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        blob = pickled(ctx)
        n = default_workers(workers, len(cells))
        threads = max(1, (os.cpu_count() or 1) // n)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            n, mp_context=spawn, initializer=_init_worker, initargs=(blob, threads)
        ) as pool:
            pending = {pool.submit(_worker_cell, cell): cell for cell in cells}
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        cell = pending.pop(fut)
                        yield cell, fut.result()
            finally:
                for fut in pending:
                    fut.cancel()


register_executor(ProcessExecutor())

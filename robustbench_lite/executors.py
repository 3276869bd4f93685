"""Executors run cells: ``local`` (in this process), ``process`` (a worker pool), ``ray``.

Each yields ``(cell, payload)`` pairs as cells finish, in any order; the runner stores each
at once and merges by sample index, so every executor gives the same report. Workers compute
only; the parent process alone writes the results store.

``ray`` is the optional extra ``pip install "robustbench_lite[ray]"``; ``address=None`` starts a
local Ray, ``"auto"`` or ``"ray://host:10001"`` joins a running cluster.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

from robustbench_lite.errors import RobustbenchLiteError
from robustbench_lite.runner_cells import Cell, CellContext, run_cell

log = logging.getLogger(__name__)
EXECUTORS = ("local", "process", "ray")


class ExecutorError(RobustbenchLiteError):
    """An executor cannot start (Ray missing or unreachable, model not picklable, ...)."""


def run_cells(
    kind: str, ctx: CellContext, cells: Sequence[Cell], *, workers: int | None = None, address: str | None = None
) -> Iterator[tuple[Cell, dict[str, Any]]]:
    """Run ``cells`` on executor ``kind``; yields each cell's payload as it finishes."""
    if kind not in EXECUTORS:
        raise ExecutorError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
    if not cells:
        return iter(())
    if kind == "local":
        return ((cell, run_cell(ctx, cell)) for cell in cells)
    if kind == "process":
        return _process(ctx, cells, workers)
    return _ray(ctx, cells, address, workers)


def preflight(kind: str, address: str | None = None) -> None:
    """Cheap checks before any model work: a known executor, Ray installed and reachable."""
    if kind not in EXECUTORS:
        raise ExecutorError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
    if kind == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ExecutorError('--executor ray needs Ray: pip install "robustbench_lite[ray]"')
        if address not in (None, "auto", "local"):
            _reachable(address)


def _default_workers(workers: int | None, n_cells: int) -> int:
    return max(1, min(workers or (os.cpu_count() or 1), n_cells))


def _pickled(ctx: CellContext) -> bytes:
    try:
        return pickle.dumps(ctx, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RuntimeError) as exc:
        raise ExecutorError(
            f"the model cannot be sent to worker processes ({type(exc).__name__}: {exc}); "
            "use --executor local, or a model whose class is importable"
        ) from None


# ---------------------------------------------------------------- process pool
_WORKER_CTX: CellContext | None = None


def _init_worker(blob: bytes, threads: int) -> None:
    import torch

    global _WORKER_CTX
    torch.set_num_threads(threads)
    _WORKER_CTX = pickle.loads(blob)  # noqa: S301 - our own context, pickled by the parent


def _worker_cell(cell: Cell) -> dict[str, Any]:
    assert _WORKER_CTX is not None
    return run_cell(_WORKER_CTX, cell)


def _process(ctx: CellContext, cells: Sequence[Cell], workers: int | None) -> Iterator[tuple[Cell, dict[str, Any]]]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    blob = _pickled(ctx)
    n = _default_workers(workers, len(cells))
    threads = max(1, (os.cpu_count() or 1) // n)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n, mp_context=spawn, initializer=_init_worker, initargs=(blob, threads)) as pool:
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


# ---------------------------------------------------------------- ray
def _ray_cell(ctx: CellContext, cell: Cell) -> dict[str, Any]:
    return run_cell(ctx, cell)


def start_ray(address: str | None, workers: int | None) -> tuple[Any, bool]:
    """``(ray module, started_here)``: join ``address`` or start a small local Ray."""
    try:
        import ray
    except ImportError:
        raise ExecutorError('--executor ray needs Ray: pip install "robustbench_lite[ray]"') from None
    if ray.is_initialized():
        return ray, False
    if address not in (None, "auto", "local"):
        _reachable(address)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        kwargs["num_cpus"] = workers or os.cpu_count() or 1
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutorError(
            f"cannot reach a Ray cluster at {address!r} ({first}); start one with `ray start --head` "
            "or leave out --ray-address to run a local Ray"
        ) from None
    return ray, True


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at ``[ray://]host:port`` (Ray itself retries for minutes)."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ExecutorError(f"Ray address {address!r}: write host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ExecutorError(
            f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}); start one with "
            "`ray start --head` or leave out --ray-address to run a local Ray"
        ) from None


def _ray(ctx: CellContext, cells: Sequence[Cell], address: str | None, workers: int | None) -> Iterator[tuple[Cell, dict[str, Any]]]:
    _pickled(ctx)  # fail early and clearly if the model cannot travel
    ray, started = start_ray(address, workers)
    try:
        remote = ray.remote(num_cpus=1)(_ray_cell)
        ctx_ref = ray.put(ctx)
        pending = {remote.remote(ctx_ref, cell): cell for cell in cells}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    payload = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
                    if isinstance(cause, RobustbenchLiteError):
                        raise RobustbenchLiteError(str(cause).splitlines()[-1]) from None
                    raise
                yield cell, payload
    finally:
        if started:
            ray.shutdown()

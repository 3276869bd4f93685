"""The ``ray`` executor: cells as tasks on a Ray cluster (local or joined)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from robustbench_lite.core.errors import ExecutorError, RobustbenchLiteError, first_line
from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.executors.base import Executor, pickled, register_executor
from robustbench_lite.suite.kinds import run_cell


def _ray_cell(ctx: CellContext, cell: Cell) -> dict[str, Any]:
    return run_cell(ctx, cell)


def start_ray(address: str | None, workers: int | None) -> tuple[Any, bool]:
    """``(ray module, started_here)``: join ``address`` or start a small local Ray."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            '--executor ray needs Ray: pip install "robustbench_lite[ray]"'
        ) from None
    if ray.is_initialized():
        return ray, False
    if address not in (None, "auto", "local"):
        _reachable(address)
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    if address is None:
        kwargs["num_cpus"] = workers or os.cpu_count() or 1
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = first_line(exc)
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


class RayExecutor(Executor):
    """Cells as Ray tasks (``pip install "robustbench_lite[ray]"``); ``address=None`` starts a
    local Ray, ``"auto"`` or ``"ray://host:10001"`` joins a running cluster."""

    name = "ray"

    def preflight(self, address: str | None) -> None:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ExecutorError('--executor ray needs Ray: pip install "robustbench_lite[ray]"')
        if address not in (None, "auto", "local"):
            _reachable(address)

    def run(
        self,
        ctx: CellContext,
        cells: Sequence[Cell],
        *,
        workers: int | None,
        address: str | None,
    ) -> Iterator[tuple[Cell, dict[str, Any]]]:
        return _ray(ctx, cells, address, workers)


def _ray(
    ctx: CellContext, cells: Sequence[Cell], address: str | None, workers: int | None
) -> Iterator[tuple[Cell, dict[str, Any]]]:
    pickled(ctx)  # fail early and clearly if the model cannot travel
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
                    cause = (
                        exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
                    )
                    if isinstance(cause, RobustbenchLiteError):
                        raise RobustbenchLiteError(str(cause).splitlines()[-1]) from None
                    raise
                yield cell, payload
    finally:
        if started:
            ray.shutdown()


register_executor(RayExecutor())

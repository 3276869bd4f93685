"""Worker processes for verifier work: one thread each, jobs shipped as arguments.

A job (network, property, re-check model, deadline) travels to its worker pickled as the task
argument, never through a module global, so the workers behave the same under the ``fork`` and
``spawn`` start methods. A job that cannot be pickled (a TorchScript model) runs in the parent.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
from collections.abc import Iterator
from typing import Any

import torch

log = logging.getLogger(__name__)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """One BLAS and one torch thread (parallelism comes from processes; spinning threads
    on a loaded 2-core machine cost more than they give)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        limiter: Any = threadpool_limits(1)
    except ImportError:  # threadpoolctl comes with scikit-learn; without it BLAS keeps its threads
        limiter = contextlib.nullcontext()
    try:
        with limiter:
            yield
    finally:
        torch.set_num_threads(old)


def shippable(job: object) -> bool:
    """Whether ``job`` can be sent to a worker process (pickled); logs why not."""
    try:
        pickle.dumps(job)
    except Exception as exc:  # any pickling failure means: run it here instead
        log.info("verifier job runs in this process: it cannot be pickled (%s)", exc)
        return False
    return True


def worker_context() -> multiprocessing.context.BaseContext:
    """The start method for verifier workers: ``fork`` where the platform has it (fast start)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")

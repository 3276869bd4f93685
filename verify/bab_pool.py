"""ReLU branch and bound on a process pool (bab.py): open domains dealt into shares, each
share searched by its own :class:`~.bab_search.Loop` in a forked worker; the first sat or
timeout ends all."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .bab_search import Entry, Loop, Search
from .chain import ConvChain
from .falsify import Check
from .layers import Network
from .properties import Case
from .workers import shippable, worker_context

#: worker processes stop this many seconds before the deadline, so that their statistics
#: reach the parent before it gives up waiting (1 s after the deadline)
REPORT_S = 0.5


def pool_size(workers: int | None, check: Check) -> int:
    """Processes for the search: ``workers``, or by default 2 where this process may have
    children (not a daemon), the machine has 2 cores and the job can be pickled."""
    if workers is not None:
        return max(1, workers)
    if multiprocessing.current_process().daemon or (os.cpu_count() or 1) < 2:
        return 1
    return 2 if shippable(check) else 1


def deal(pending: list[tuple[int, list[Entry]]], parts: int) -> list[list[tuple[int, list[Entry]]]]:
    """Every disjunct's open domains dealt round-robin into ``parts`` shares (a hard subtree's
    siblings land in different shares), each share keeping the per-disjunct grouping."""
    out: list[list[tuple[int, list[Entry]]]] = [[] for _ in range(parts)]
    for k, stack in pending:
        for p in range(parts):
            share = []
            for dom, lam, worst in stack:
                if p >= len(dom):
                    continue
                idx = torch.arange(p, len(dom), parts, device=worst.device)
                share.append((dom.take(idx), [v[idx] for v in lam], worst[idx]))
            if share:
                out[p].append((k, share))
    return [o for o in out if o]


@dataclass
class Job:
    """One worker's share of the search: per disjunct id, its open domains."""

    chain: ConvChain
    net: Network
    case: Case
    check: Check
    device: str
    deadline: float
    settings: dict[str, Any]
    items: list[tuple[int, list[Entry]]]


def _worker(job: Job) -> tuple[str, np.ndarray | None, dict[str, Any]]:
    """Run a share's searches in this (forked) process; ("unsat"|"sat"|"timeout"|"unknown",
    checked counterexample, stats)."""
    torch.set_num_threads(1)
    stats: dict[str, Any] = {}
    loop = Loop(**job.settings)
    unknown = False
    for k, stack in job.items:
        sub = Search(job.chain, job.net, job.case, job.check, job.device, disjuncts=[k])
        out = loop.run(sub, stack, job.deadline - REPORT_S)
        _add(stats, sub.stats)
        if out in ("sat", "timeout"):
            return out, loop.found, stats
        unknown = unknown or out == "unknown"
    return ("unknown" if unknown else "unsat"), None, stats


def _worker_from_bytes(payload: bytes) -> tuple[str, np.ndarray | None, dict[str, Any]]:
    """:func:`_worker` on a pickled :class:`Job` (see :func:`run_jobs`)."""
    job: Job = pickle.loads(payload)  # our own bytes, made in the parent a moment ago
    return _worker(job)


def _add(total: dict[str, Any], stats: dict[str, Any]) -> None:
    for key, val in stats.items():
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            total[key] = total.get(key, 0) + val


def run_jobs(
    jobs: list[Job], n_workers: int, deadline: float, stats: dict[str, Any]
) -> tuple[str, np.ndarray | None]:
    """The shares on a pool of ``n_workers`` processes; the first sat or timeout ends all."""
    unknown = False
    # each job travels as plain pickle bytes (tensors copied): torch's file-descriptor sharing
    # would leave the parent's resource-sharer thread a connection that terminate() resets,
    # which it reports as a traceback on stderr
    payloads = [pickle.dumps(job) for job in jobs]
    with worker_context().Pool(n_workers) as pool:
        results = pool.imap_unordered(_worker_from_bytes, payloads)
        for _ in jobs:
            try:  # the parent enforces the deadline even if a worker's step overruns it
                out, x, st = results.next(
                    timeout=min(max(0.0, deadline - time.monotonic()) + 1.0, 1e6)
                )
            except multiprocessing.TimeoutError:
                pool.terminate()
                return "timeout", None
            _add(stats, st)
            if out in ("sat", "timeout"):
                pool.terminate()
                return out, x
            unknown = unknown or out == "unknown"
    return ("unknown" if unknown else "unsat"), None

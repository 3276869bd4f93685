"""Input splitting as a portfolio of branching rules: neither rule dominates on ACAS Xu.

Measured on this machine (1 worker, 60 s per instance, ACAS Xu): the lookahead rule
(``split_rule="best"``) closes prop 1 on net 2_4 in under a second where smear times out, and
smear closes prop 2 and prop 5 on net 1_1 in 2.5 s and 4.5 s where the lookahead times out.
So both rules run on the same case, each on its own stack of open boxes, and the first
decisive answer wins:

* serially, in time slices that double (``slice_s``, ``2 slice_s``, ...) alternating between
  the rules, so the answer costs at most about twice the better rule's time;
* with two or more worker processes, each rule in its own process from the stack the serial
  phase left (after ``serial_s``), so the answer costs about the better rule's time.

Both rules also bound the boxes their cheap bound leaves open with alpha-CROWN
(``ALPHA_LAYER_STEPS``, alpha_box.py; serially only from the first 1 s slice on).

Both rules are sound on their own (every closed box is refuted by bounds, every counterexample
re-checked), so taking whichever finishes first is sound. With ``progress`` (one
:class:`~.branch.SplitProgress` per rule, :func:`rule_progress`) each rule reports its search
every 2 s, in the serial slices and in its worker process alike.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .branch import Box, Outcome, SplitProgress, input_split
from .falsify import Check
from .layers import Network
from .properties import Case
from .workers import single_threaded, worker_context

RULES = ("best", "smear")
#: Per rule, alpha-CROWN on the boxes its cheap bound leaves open (alpha_box.py, starting from
#: the cheap bound's layer bounds): the number of Adam steps on the intermediate layers before
#: the spec rows' 20 (None: no alpha). Measured on the 17 ACAS Xu instances that took over 5 s
#: (60 s each, 2 workers): {best: 5, smear: 0} solved all 17 in 124 s in all, the slowest
#: (net 4_2 prop 2, smear) in 35 s, which had timed out with alpha on the lookahead only;
#: {best: 0, smear: 0} left 4 timeouts (prop 1 needs the layer steps), {best: 5, smear: 2}
#: took 160 s (4_2 prop 2: 57 s).
ALPHA_LAYER_STEPS: dict[str, int | None] = {"best": 5, "smear": 0}
#: Serially, alpha starts with the first slice this long (0.25 s and 0.5 s slices without it):
#: a batch of alpha bounds can take seconds, and most instances close in the first slices.
ALPHA_SLICE_S = 1.0
DECISIVE = ("sat", "unsat")
#: Seconds between two progress reports of one rule (as ReLU branch and bound, bab.py).
PROGRESS_S = 2.0


def rule_progress(sink: Callable[[dict[str, Any]], None]) -> dict[str, SplitProgress]:
    """One progress reporter per rule (every ``PROGRESS_S``), counting elapsed time from now."""
    start = time.monotonic()
    return {
        rule: SplitProgress(sink, rule, start=start, every_s=PROGRESS_S, last=start)
        for rule in RULES
    }


def merge_stats(total: dict[str, Any], stats: dict[str, Any]) -> None:
    """Add ``stats`` into ``total``: integer counters are summed, anything else replaced."""
    for key, val in stats.items():
        total[key] = total.get(key, 0) + val if isinstance(val, int) else val


def serial_portfolio(
    net: Network,
    case: Case,
    check: Check,
    deadline: float,
    *,
    stop_at: float | None = None,
    slice_s: float = 0.25,
    stacks: dict[str, list[Box] | None] | None = None,
    alpha: bool = True,
    progress: dict[str, SplitProgress] | None = None,
) -> tuple[Outcome, dict[str, list[Box] | None]]:
    """Alternate the rules in doubling time slices until one decides, ``deadline`` or ``stop_at``.

    Returns the outcome (``paused`` at ``stop_at``) and each undecided rule's open stack
    (``None`` = not started yet) so that the search can go on elsewhere. ``alpha``: the rules
    in ``ALPHA_RULES`` bound their open boxes with alpha-CROWN too (from the first slice of
    ``ALPHA_SLICE_S``). ``progress``: each rule's reporter (:func:`rule_progress`).
    """
    stacks = dict.fromkeys(RULES) if stacks is None else stacks
    total: dict[str, Any] = {}
    gave_up: set[str] = set()
    while True:
        for rule in RULES:
            if rule in gave_up:
                continue
            now = time.monotonic()
            if now > deadline:
                return Outcome("timeout", stats=total), stacks
            if stop_at is not None and now > stop_at:
                return Outcome("paused", stats=total), stacks
            end = now + slice_s if stop_at is None else min(now + slice_s, stop_at)
            out = input_split(
                net,
                case,
                check,
                deadline,
                stack=stacks[rule],
                pause_at=end,
                split_rule=rule,
                alpha=alpha and ALPHA_LAYER_STEPS[rule] is not None and slice_s >= ALPHA_SLICE_S,
                alpha_layer_steps=ALPHA_LAYER_STEPS[rule] or 0,
                progress=progress.get(rule) if progress else None,
            )
            merge_stats(total, out.stats)
            if out.status in DECISIVE:
                total["rule"] = rule
                return Outcome(out.status, x=out.x, stats=total), stacks
            if out.status == "paused":
                stacks[rule] = out.stack
            elif (
                out.status == "unknown"
            ):  # stuck on point-sized boxes: the other rule may still decide
                gave_up.add(rule)
            else:
                return Outcome(out.status, stats=total), stacks
        if len(gave_up) == len(RULES):
            return Outcome("unknown", stats=total), stacks
        slice_s *= 2


@dataclass(frozen=True)
class _RuleJob:
    """One branching rule's search for a worker process (passed as the argument, never a global)."""

    rule: str
    stack: list[Box] | None
    net: Network
    case: Case
    check: Check
    deadline: float
    alpha: bool
    progress: SplitProgress | None = None


def _rule_worker(job: _RuleJob) -> tuple[str, Outcome]:
    with single_threaded():
        return job.rule, input_split(
            job.net,
            job.case,
            job.check,
            job.deadline,
            stack=job.stack,
            split_rule=job.rule,
            alpha=job.alpha and ALPHA_LAYER_STEPS[job.rule] is not None,
            alpha_layer_steps=ALPHA_LAYER_STEPS[job.rule] or 0,
            progress=job.progress,
        )


def parallel_portfolio(
    net: Network,
    case: Case,
    check: Check,
    deadline: float,
    stacks: dict[str, list[Box] | None],
    alpha: bool = True,
    progress: dict[str, SplitProgress] | None = None,
) -> Outcome:
    """Each rule in its own forked process from its stack; the first decisive answer wins.
    ``alpha``: the rules in ``ALPHA_RULES`` bound their open boxes with alpha-CROWN too.
    ``progress``: each rule's reporter, carried on into its process."""
    ctx = worker_context()
    total: dict[str, Any] = {}
    status = "unknown"
    with ctx.Pool(len(RULES)) as pool:
        results = pool.imap_unordered(
            _rule_worker,
            [
                _RuleJob(
                    rule,
                    stacks.get(rule),
                    net,
                    case,
                    check,
                    deadline,
                    alpha,
                    progress.get(rule) if progress else None,
                )
                for rule in RULES
            ],
        )
        for _ in RULES:
            try:  # the parent enforces the deadline even if a worker's batch overruns it
                rule, res = results.next(timeout=max(0.0, deadline - time.monotonic()) + 0.5)
            except multiprocessing.TimeoutError:
                pool.terminate()
                return Outcome("timeout", stats=total)
            merge_stats(total, res.stats)
            if res.status in DECISIVE:
                pool.terminate()
                total["rule"] = rule
                return Outcome(res.status, x=res.x, stats=total)
            if res.status == "timeout":
                status = "timeout"
    return Outcome(status, stats=total)

"""Batched branch and bound over ReLUs on conv-native alpha/beta-CROWN bounds.

The search follows beta-CROWN's BaB (Wang et al. 2021): the root's intermediate bounds are
computed once (:func:`~.crown.root_bounds`); a domain is the root plus split phases for some
neurons; every step pops up to ``batch`` open domains, splits each on one neuron, and bounds
all ``2 * batch`` children at once: the split neuron's bounds are cut at 0 (its relaxation
becomes its exact linear piece), and the children's slopes (alpha, inherited from the parent)
and split multipliers (beta, new ones start at 0) get ``steps`` projected Adam steps on the
bound (:func:`~.crown.optimise`). A disjunct of the property is refuted on a domain when one of
its rows has a positive sound lower bound; a domain is closed when all of its disjuncts are.

Branching is filtered smart branching (FSB, De Palma et al. 2021, "Improved Branch and Bound
for Neural Network Verification via Lagrangian Decomposition"): the ``fsb_k`` free unstable
neurons with the largest intercept score ``-min(lam, 0) * tu`` (the part of BaBSR, Bunel et al.
2020, that measures how much the triangle relaxation costs the bound; ``lam`` the neuron's
coefficient in the worst open row's bound) are the candidates, and for each the bounds of both
children are actually computed (parent's slopes, no optimisation); the candidate whose worse
child has the best bound is split. Deviations from FSB: one filter score instead of two, and
the candidates are judged by our CROWN bound rather than the paper's one-step dual bound.

For networks of at most ``refine_max_neurons`` hidden neurons (the MLPs of mnistfc) the
children's intermediate bounds are also recomputed after each split (:func:`~.crown.refine`,
CROWN through the split-tightened earlier layers, from the layer after the split on) - what
beta-CROWN leaves to beta, bought here with more bound computations per domain; conv nets keep
the root's intermediate bounds.

The falsifier runs first (in the caller); each bounded domain also tries, per open row, the
box corner that minimises the row's linear lower bound (checked on the real model, like every
counterexample). A domain left with at most ``leaf_unstable`` free unstable neurons goes to
the incremental z3 :class:`~.encoders.LeafSolver` when the network is small enough for z3
(``z3_max_neurons``); a domain with none left that the bound cannot close (the relaxation is
then linear but the split constraints are only enforced through beta) and no z3 leaves is
given up, so the answer becomes UNKNOWN, never a guess.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .bab_pool import Job, deal, pool_size, run_jobs
from .bab_search import Entry, Loop, Progress, Search
from .bounds import DeadlineExceeded
from .branch import Outcome
from .chain import ConvChain
from .crown import (
    Domains,
    WorkChain,
    adaptive_alpha,
    optimise,
    optimise_layers,
    root_bounds,
    spec_bound,
)
from .falsify import Check
from .layers import Network
from .properties import Case

#: with more than one process, the search runs here until every one of ``2 * workers``
#: shares can get this many open domains, then goes to the pool
GROW_PER_SHARE: float = 4


def relu_bab(
    chain: ConvChain,
    net: Network,
    case: Case,
    check: Check,
    deadline: float,
    *,
    batch: int = 32,
    root_steps: int = 20,
    layer_steps: int = 10,
    steps: int | None = None,
    lr: float = 0.1,
    fsb_k: int = 3,
    leaf_unstable: int = 12,
    leaf_timeout_s: float = 20.0,
    z3_max_neurons: int = 2000,
    refine_max_neurons: int = 2000,
    device: str = "cpu",
    float32_steps: bool = True,
    progress: Progress | None = None,
    workers: int | None = None,
) -> Outcome:
    """Decide ``case`` by batched ReLU branch and bound on alpha/beta-CROWN bounds.

    The root is bounded once for all disjuncts; then every disjunct the root leaves open gets
    its own search (easiest first: largest root gap), whose domains carry and bound only that
    disjunct's rows. The case is unsat when every disjunct is refuted on the whole box, so the
    searches are independent; the first sat ends the case.

    Args:
        chain: the conv-native network, checked against ``net`` (:func:`~.chain.conv_chain`).
        net: the exact dense lowering (z3 leaves encode it).
        check: the float32 re-check of candidate counterexamples on the real model.
        deadline: ``time.monotonic()`` value; the answer is ``timeout`` past it.
        batch: parents split per step (``2 * batch`` children bounded at once).
        root_steps / layer_steps / steps: Adam steps on the root's spec rows, on each of the
            root's intermediate layers, and on every batch of children; ``lr`` their step size.
            ``steps=None``: 8 for nets whose children's intermediate bounds are refined (at
            most ``refine_max_neurons``, the MLPs), 2 for larger ones (on oval21's conv nets
            two steps and more domains decide more per CPU second than eight).
        fsb_k: candidates per domain that filtered smart branching bounds (1 = the filter alone).
        leaf_unstable / leaf_timeout_s / z3_max_neurons: z3 leaves (see the module docstring).
        refine_max_neurons: recompute children's intermediate bounds up to this network size.
        device: torch device of the bounds; ``float32_steps`` optimise in float32.
        progress: called about every 2 s with elapsed_s, domains_left, visited, worst_gap.
        workers: processes for the search (None: 2 where possible, see :func:`pool_size`).
            The search grows to ``GROW_PER_SHARE * 2 * workers`` open domains per disjunct in
            this process; they are dealt round-robin into ``2 * workers`` shares run on a
            process pool.

    Returns an :class:`~.branch.Outcome` (unsat / sat with a checked ``x`` / timeout /
    unknown) whose ``stats`` count domains, BaB steps, z3 leaves and the seconds spent in
    bounds, z3 and corner falsification.
    """
    start = time.monotonic()
    chain = chain.to(device)
    work = WorkChain.of(chain) if float32_steps else None
    s = Search(chain, net, case, check, device)
    stats = s.stats
    try:
        t = time.monotonic()
        lower, upper = root_bounds(chain, s.lo, s.hi, deadline)
        if layer_steps > 0:
            optimise_layers(
                chain,
                lower,
                upper,
                s.lo,
                s.hi,
                steps=layer_steps,
                lr=lr,
                deadline=deadline,
                work=work,
            )
        R = s.C.shape[0]
        root = Domains(
            lower,
            upper,
            [torch.zeros_like(v, dtype=torch.int8) for v in lower],
            [adaptive_alpha(lw, u)[:, None].repeat(1, R, 1) for lw, u in zip(lower, upper)],
            [torch.zeros(1, R, v.shape[1], dtype=v.dtype, device=v.device) for v in lower],
            torch.ones(1, s.K, dtype=torch.bool, device=s.lo.device),
        )
        optimise(
            chain, root, s.lo, s.hi, s.C, steps=root_steps, lr=lr, deadline=deadline, work=work
        )
        stats["time_bounds_s"] += time.monotonic() - t
    except DeadlineExceeded:
        return Outcome("timeout", stats=stats)
    root_np = [(lw[0].cpu().numpy(), u[0].cpu().numpy()) for lw, u in zip(lower, upper)]
    entry, found, worst_gap = s.evaluate(root)
    stats["domains"] += 1
    stats["root_gap"] = round(worst_gap, 6) if np.isfinite(worst_gap) else None
    if found is not None:
        return Outcome("sat", x=found, stats=stats, root_pre=root_np)
    if entry is None:
        return Outcome("unsat", stats=stats, root_pre=root_np)
    # per open disjunct: its best row's root gap (the disjunct is refuted once any row is)
    with torch.no_grad():
        gap = (spec_bound(chain, root, s.lo, s.hi, s.C, record=False).sound - s.d)[0]
    open_k = [k for k in range(s.K) if bool(entry[0].act[0, k])]
    best = {k: float(gap[torch.from_numpy(s.group == k)].max()) for k in open_k}
    open_k.sort(key=lambda k: -best[k])
    stats["open_disjuncts"] = len(open_k)
    refresh = sum(chain.sizes()) <= refine_max_neurons
    if steps is None:
        steps = 8 if refresh else 2
    settings: dict[str, Any] = dict(
        batch=batch,
        steps=steps,
        lr=lr,
        fsb_k=fsb_k,
        leaf_unstable=leaf_unstable,
        leaf_timeout_s=leaf_timeout_s,
        use_z3=sum(chain.sizes()) <= z3_max_neurons,
        refresh=refresh,
        work=work,
        progress=progress,
        start=start,
        root_np=root_np,
    )
    loop = Loop(**settings)
    n_workers = pool_size(workers, check)
    grow_to = max(1, int(GROW_PER_SHARE * 2 * n_workers)) if n_workers > 1 else None
    unknown = False
    pending: list[tuple[int, list[Entry]]] = []
    for k in open_k:
        sub = Search(chain, net, case, check, device, disjuncts=[k], stats=stats)
        rows = torch.from_numpy(s.group == k)
        dom = Domains(
            [v.clone() for v in lower],
            [v.clone() for v in upper],
            [v.clone() for v in root.splits],
            [a[:, rows] for a in root.alpha],
            [b[:, rows] for b in root.beta],
            torch.ones(1, 1, dtype=torch.bool, device=s.lo.device),
        )
        sub_entry, found, _ = sub.evaluate(dom)
        if found is not None:
            return Outcome("sat", x=found, stats=stats, root_pre=root_np)
        if sub_entry is None:
            continue
        out = loop.run(sub, [sub_entry], deadline, grow_to=grow_to)
        if out == "paused":
            pending.append((k, loop.stack))
            continue
        if out in ("sat", "timeout"):
            return Outcome(out, x=loop.found, stats=stats, root_pre=root_np)
        unknown = unknown or out == "unknown"
    if pending:
        jobs = [
            Job(chain, net, case, check, device, deadline, settings, part)
            for part in deal(pending, 2 * n_workers)
        ]
        stats["bab_shares"] = len(jobs)
        out, x = run_jobs(jobs, n_workers, deadline, stats)
        if out in ("sat", "timeout"):
            return Outcome(out, x=x, stats=stats, root_pre=root_np)
        unknown = unknown or out == "unknown"
    return Outcome("unknown" if unknown else "unsat", stats=stats, root_pre=root_np)

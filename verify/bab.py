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

import multiprocessing
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .bounds import DeadlineExceeded
from .branch import Outcome
from .chain import ConvChain
from .crown import (
    Domains,
    WorkChain,
    adaptive_alpha,
    backsub,
    optimise,
    optimise_layers,
    refine,
    relax,
    root_bounds,
    spec_bound,
)
from .falsify import Check, check_most_violating, disjunct_margin, stacked_spec
from .layers import Network
from .properties import Case
from .workers import shippable, worker_context

Progress = Callable[[dict[str, Any]], None]
#: worker processes stop this many seconds before the deadline, so that their statistics
#: reach the parent before it gives up waiting (1 s after the deadline)
REPORT_S = 0.5
#: with more than one process, the search runs here until every one of ``2 * workers``
#: shares can get this many open domains, then goes to the pool
GROW_PER_SHARE: float = 4
Entry = tuple[Domains, list[torch.Tensor], torch.Tensor]  # domains, lam of worst row, worst row


class _Search:
    """One case's BaB state: spec, boxes on the device, stats."""

    def __init__(
        self,
        chain: ConvChain,
        net: Network,
        case: Case,
        check: Check,
        device: str,
        disjuncts: list[int] | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        self.chain, self.net, self.case, self.check = chain, net, case, check
        self.work: WorkChain | None = None  # set by the loop: the lookahead's precision
        C, d, group = stacked_spec(case)
        #: corner points are judged against every disjunct of the case (a point that violates
        #: any of them is a counterexample), also in a search that bounds only some of them
        self.falsify_spec = (C, d, group, len(case.disjuncts))
        #: the case's disjunct ids this search decides (all by default); rows of the others
        #: are left out of every bound, so a domain costs what its own rows cost
        self.disjuncts = list(range(len(case.disjuncts))) if disjuncts is None else disjuncts
        if disjuncts is not None:
            keep = np.isin(group, disjuncts)
            remap = {k: i for i, k in enumerate(disjuncts)}
            C, d = C[keep], d[keep]
            group = np.array([remap[int(g)] for g in group[keep]], dtype=int)
        self.C = torch.from_numpy(C).to(device)
        self.d = torch.from_numpy(d).to(device)
        self.K = len(self.disjuncts)
        self.group = group
        self.onehot = torch.from_numpy(np.stack([group == k for k in range(self.K)], 1)).to(device)
        self.lo = torch.from_numpy(case.lo)[None].to(device)
        self.hi = torch.from_numpy(case.hi)[None].to(device)
        self.stats: dict[str, Any] = (
            stats
            if stats is not None
            else {
                "domains": 0,
                "bab_steps": 0,
                "z3_leaves": 0,
                "z3_unknown": 0,
                "stuck": 0,
                "time_bounds_s": 0.0,
                "time_z3_s": 0.0,
                "time_falsify_s": 0.0,
            }
        )

    def boxes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lo.expand(n, -1), self.hi.expand(n, -1)

    def evaluate(self, dom: Domains) -> tuple[Entry | None, np.ndarray | None, float]:
        """Bound ``dom`` (alpha/beta already optimised); drop closed domains; try corners.

        Returns the open domains with the branching data, a checked counterexample (or None)
        and the smallest open gap ``lb - d`` (inf when all closed).
        """
        t = time.monotonic()
        lo, hi = self.boxes(len(dom))
        b = spec_bound(self.chain, dom, lo, hi, self.C)
        self.stats["time_bounds_s"] += time.monotonic() - t
        gap_all = b.sound - self.d
        row_ref = gap_all > 0
        act = dom.act & ~(row_ref[:, :, None] & self.onehot[None]).any(1)
        keep = act.any(1)
        if not bool(keep.any()):
            return None, None, float("inf")
        dom = dom.take(keep)
        dom.act = act[keep]
        open_rows = (dom.act.double() @ self.onehot.T.double() > 0) & ~row_ref[keep]
        A_in = b.A_in[keep]
        t = time.monotonic()
        rows = torch.nonzero(open_rows.any(0)).flatten().tolist()
        n = len(dom)
        pts = torch.cat([torch.where(A_in[:, r] > 0, self.lo, self.hi) for r in rows])
        y = self.chain.forward(pts).cpu().numpy()
        pts_np = pts.cpu().numpy()
        margin = disjunct_margin(y, *self.falsify_spec)
        found = check_most_violating(pts_np, margin, self.check)
        self.stats["time_falsify_s"] += time.monotonic() - t
        if found is not None:
            return None, found, -float("inf")
        gap = torch.where(open_rows, gap_all[keep], torch.inf)
        worst = gap.argmin(1)
        idx = torch.arange(n, device=worst.device)
        lam = [v[keep][idx, worst] for v in b.lam]
        return (dom, lam, worst), None, float(gap.min())

    def choose(
        self, dom: Domains, lam: list[torch.Tensor], worst: torch.Tensor, fsb_k: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(layer, neuron, free unstable count) per domain by filtered smart branching."""
        scores, sizes = [], []
        for j, (lw, u, s) in enumerate(zip(dom.lower, dom.upper, dom.splits)):
            _, unstable, su, tu = relax(lw, u)
            free = unstable & (s == 0)
            area = torch.where(free, tu, 0.0)
            sc = -lam[j].clamp(max=0) * tu + 1e-6 * area
            scores.append(torch.where(free, sc, -torch.inf))
            sizes.append(lw.shape[1])
        flat = torch.cat(scores, 1)
        n_free = torch.isfinite(flat).sum(1)
        k = min(fsb_k, flat.shape[1])
        top = flat.topk(k, dim=1)
        cand = top.indices  # (N, k)
        if k > 1:
            value = self._lookahead(dom, worst, cand, sizes)
            value = torch.where(torch.isfinite(top.values), value, -torch.inf)
            pick = cand.gather(1, value.argmax(1, keepdim=True))[:, 0]
        else:
            pick = cand[:, 0]
        offsets = torch.tensor(np.cumsum([0] + sizes), device=pick.device)
        layer = torch.searchsorted(offsets, pick, right=True) - 1
        return layer, pick - offsets[layer], n_free

    def _lookahead(
        self, dom: Domains, worst: torch.Tensor, cand: torch.Tensor, sizes: list[int]
    ) -> torch.Tensor:
        """min over both children of the worst row's bound, per (domain, candidate)."""
        N, k = cand.shape
        idx = torch.arange(N, device=cand.device)
        rows = self.C[worst][:, None]  # (N, 1, n_out)
        lowers, uppers, alphas, betas, splits = [], [], [], [], []
        offsets = np.cumsum([0] + sizes)
        for j in range(len(sizes)):
            lw = dom.lower[j].repeat(2 * k, 1)
            u = dom.upper[j].repeat(2 * k, 1)
            for c in range(k):
                flat = cand[:, c]
                here = (flat >= int(offsets[j])) & (flat < int(offsets[j + 1]))
                nn_ = (flat - int(offsets[j])).clamp(0, sizes[j] - 1)
                r1 = idx + (2 * c) * N
                r2 = idx + (2 * c + 1) * N
                lw[r1[here], nn_[here]] = lw[r1[here], nn_[here]].clamp(min=0.0)
                u[r2[here], nn_[here]] = u[r2[here], nn_[here]].clamp(max=0.0)
            lowers.append(lw)
            uppers.append(torch.maximum(u, torch.minimum(lw, u)))
            alphas.append(dom.alpha[j][idx, worst][:, None].repeat(2 * k, 1, 1))
            betas.append(dom.beta[j][idx, worst][:, None].repeat(2 * k, 1, 1))
            splits.append(dom.splits[j].repeat(2 * k, 1))
        lo, hi = self.boxes(2 * k * N)
        # a heuristic score, never a decision: computed in the optimiser's (float32) precision
        net = self.work.chain if self.work is not None else self.chain
        dt = self.work.dtype if self.work is not None else lo.dtype
        with torch.no_grad():
            b = backsub(
                net,
                net.n_relu_layers,
                rows.repeat(2 * k, 1, 1).to(dt),
                lo.to(dt),
                hi.to(dt),
                [v.to(dt) for v in lowers],
                [v.to(dt) for v in uppers],
                alpha=[v.to(dt) for v in alphas],
                beta=[v.to(dt) for v in betas],
                splits=splits,
                magnitude=False,
            )
        val = b.lb[:, 0].reshape(2 * k, N).to(lo.dtype)
        return torch.minimum(val[0::2], val[1::2]).T  # (N, k)


def _children(dom: Domains, layer: torch.Tensor, neuron: torch.Tensor) -> Domains:
    N = len(dom)
    both = Domains.cat([dom, dom])
    idx = torch.arange(N, device=layer.device)
    for j in range(len(dom.lower)):
        here = layer == j
        if not bool(here.any()):
            continue
        r, nn_ = idx[here], neuron[here]
        both.splits[j][r, nn_] = 1
        both.lower[j][r, nn_] = both.lower[j][r, nn_].clamp(min=0.0)
        both.splits[j][N + r, nn_] = -1
        both.upper[j][N + r, nn_] = both.upper[j][N + r, nn_].clamp(max=0.0)
    return both


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
        workers: processes for the search (None: 2 where possible, see :func:`_n_workers`).
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
    s = _Search(chain, net, case, check, device)
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
    loop = _Loop(**settings)
    n_workers = _n_workers(workers, check)
    grow_to = max(1, int(GROW_PER_SHARE * 2 * n_workers)) if n_workers > 1 else None
    unknown = False
    pending: list[tuple[int, list[Entry]]] = []
    for k in open_k:
        sub = _Search(chain, net, case, check, device, disjuncts=[k], stats=stats)
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
            _Job(chain, net, case, check, device, deadline, settings, part)
            for part in _deal(pending, 2 * n_workers)
        ]
        stats["bab_shares"] = len(jobs)
        out, x = _run_jobs(jobs, n_workers, deadline, stats)
        if out in ("sat", "timeout"):
            return Outcome(out, x=x, stats=stats, root_pre=root_np)
        unknown = unknown or out == "unknown"
    return Outcome("unknown" if unknown else "unsat", stats=stats, root_pre=root_np)


def _n_workers(workers: int | None, check: Check) -> int:
    """Processes for the search: ``workers``, or by default 2 where this process may have
    children (not a daemon), the machine has 2 cores and the job can be pickled."""
    if workers is not None:
        return max(1, workers)
    if multiprocessing.current_process().daemon or (os.cpu_count() or 1) < 2:
        return 1
    return 2 if shippable(check) else 1


def _deal(
    pending: list[tuple[int, list[Entry]]], parts: int
) -> list[list[tuple[int, list[Entry]]]]:
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
class _Job:
    """One worker's share of the search: per disjunct id, its open domains."""

    chain: ConvChain
    net: Network
    case: Case
    check: Check
    device: str
    deadline: float
    settings: dict[str, Any]
    items: list[tuple[int, list[Entry]]]


def _worker(job: _Job) -> tuple[str, np.ndarray | None, dict[str, Any]]:
    """Run a share's searches in this (forked) process; ("unsat"|"sat"|"timeout"|"unknown",
    checked counterexample, stats)."""
    torch.set_num_threads(1)
    stats: dict[str, Any] = {}
    loop = _Loop(**job.settings)
    unknown = False
    for k, stack in job.items:
        sub = _Search(job.chain, job.net, job.case, job.check, job.device, disjuncts=[k])
        out = loop.run(sub, stack, job.deadline - REPORT_S)
        _add(stats, sub.stats)
        if out in ("sat", "timeout"):
            return out, loop.found, stats
        unknown = unknown or out == "unknown"
    return ("unknown" if unknown else "unsat"), None, stats


def _worker_from_bytes(payload: bytes) -> tuple[str, np.ndarray | None, dict[str, Any]]:
    """:func:`_worker` on a pickled :class:`_Job` (see :func:`_run_jobs`)."""
    job: _Job = pickle.loads(payload)  # our own bytes, made in the parent a moment ago
    return _worker(job)


def _add(total: dict[str, Any], stats: dict[str, Any]) -> None:
    for key, val in stats.items():
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            total[key] = total.get(key, 0) + val


def _run_jobs(
    jobs: list[_Job], n_workers: int, deadline: float, stats: dict[str, Any]
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


class _Loop:
    """The BaB loop of one :class:`_Search` (its disjuncts), with the search's settings."""

    def __init__(
        self,
        *,
        batch: int,
        steps: int,
        lr: float,
        fsb_k: int,
        leaf_unstable: int,
        leaf_timeout_s: float,
        use_z3: bool,
        refresh: bool,
        work: WorkChain | None,
        progress: Progress | None,
        start: float,
        root_np: list[tuple[np.ndarray, np.ndarray]],
    ) -> None:
        self.batch, self.steps, self.lr, self.fsb_k = batch, steps, lr, fsb_k
        self.leaf_unstable, self.leaf_timeout_s = leaf_unstable, leaf_timeout_s
        self.use_z3, self.refresh, self.work = use_z3, refresh, work
        self.progress, self.start, self.root_np = progress, start, root_np
        self.last_report = start
        self.leaf_solver: Any = None
        self.found: np.ndarray | None = None
        self.stack: list[Entry] = []

    def run(
        self, s: _Search, stack: list[Entry], deadline: float, grow_to: int | None = None
    ) -> str:
        """ "unsat" (every domain closed), "sat" (``self.found`` set), "timeout", "unknown", or
        "paused" once ``grow_to`` domains are open (then ``self.stack`` holds them)."""
        stats, chain, batch = s.stats, s.chain, self.batch
        s.work = self.work
        worst_gap = -float("inf")
        while stack:
            if grow_to is not None and sum(len(e[0]) for e in stack) >= grow_to:
                self.stack = stack
                return "paused"
            now = time.monotonic()
            if now > deadline:
                return "timeout"
            if self.progress is not None and now - self.last_report > 2.0:
                self.last_report = now
                self.progress(
                    {
                        "elapsed_s": round(now - self.start, 1),
                        "disjunct": s.disjuncts[0],
                        "domains_left": sum(len(e[0]) for e in stack),
                        "visited": stats["domains"],
                        "worst_gap": worst_gap,
                    }
                )
            dom, lam, worst = stack.pop()
            if len(dom) > batch:
                n = len(dom)
                stack.append(
                    (
                        dom.take(slice(0, n - batch)),
                        [v[: n - batch] for v in lam],
                        worst[: n - batch],
                    )
                )
                dom, lam, worst = (
                    dom.take(slice(n - batch, None)),
                    [v[n - batch :] for v in lam],
                    worst[n - batch :],
                )
            t = time.monotonic()
            layer, neuron, n_free = s.choose(dom, lam, worst, self.fsb_k)
            stats["time_bounds_s"] += time.monotonic() - t
            leaf = n_free <= (self.leaf_unstable if self.use_z3 else 0)
            for i in torch.nonzero(leaf).flatten().tolist():
                res = self._leaf(s, dom, i, deadline)
                if res in ("sat", "timeout"):
                    return res
            go = torch.nonzero(~leaf).flatten()
            if go.numel() == 0:
                continue
            kids = _children(dom.take(go), layer[go], neuron[go])
            stats["domains"] += len(kids)
            stats["bab_steps"] += 1
            lo, hi = s.boxes(len(kids))
            t = time.monotonic()
            if self.refresh:
                try:
                    refine(chain, kids, lo, hi, deadline, first=int(layer[go].min()) + 1)
                except DeadlineExceeded:
                    return "timeout"
            optimise(
                chain,
                kids,
                lo,
                hi,
                s.C,
                steps=self.steps,
                lr=self.lr,
                deadline=deadline,
                work=self.work,
            )
            stats["time_bounds_s"] += time.monotonic() - t
            entry_, found, gap = s.evaluate(kids)
            if found is not None:
                self.found = found
                return "sat"
            if entry_ is not None:
                worst_gap = gap
                stack.append(entry_)
        return "unknown" if stats["z3_unknown"] or stats["stuck"] else "unsat"

    def _leaf(self, s: _Search, dom: Domains, i: int, deadline: float) -> str:
        """Domain ``i`` has too few free unstable neurons to split: z3 decides it (or it is
        counted as stuck). Returns "sat", "timeout" or "" (go on)."""
        stats = s.stats
        if not self.use_z3:
            stats["stuck"] += 1
            return ""
        if self.leaf_solver is None:
            from .encoders import LeafSolver

            self.leaf_solver = LeafSolver(s.net, s.case, self.root_np)
        timeout = min(self.leaf_timeout_s, deadline - time.monotonic())
        if timeout <= 0:
            return "timeout"
        t = time.monotonic()
        stats["z3_leaves"] += 1
        open_full = np.zeros(len(s.case.disjuncts), dtype=bool)
        open_full[s.disjuncts] = dom.act[i].cpu().numpy()
        status, x = self.leaf_solver.check(
            s.case.lo,
            s.case.hi,
            [(lw[i].cpu().numpy(), u[i].cpu().numpy()) for lw, u in zip(dom.lower, dom.upper)],
            open_full,
            timeout,
        )
        stats["time_z3_s"] += time.monotonic() - t
        if status == "sat" and x is not None:
            checked = s.check(x)
            if checked is not None:
                self.found = checked
                return "sat"
            status = "unknown"  # a real-valued witness that float32 does not confirm
        if status != "unsat":
            stats["z3_unknown"] += 1
        return ""

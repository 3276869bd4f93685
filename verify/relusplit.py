"""Branch and bound over ReLU phases (wide inputs), with z3 on the leaves.

A domain is the case's box plus a phase (+1 active / -1 inactive / 0 free) for some hidden
neurons. Domains are bounded in batches (CROWN with the split neurons fixed and the parent's
bounds intersected, :func:`robustbench_lite.verify.bounds.propagate`); a disjunct is refuted
when one of its rows has a positive lower bound. An open domain with at most
``leaf_unstable`` unstable neurons goes to the incremental z3 :class:`LeafSolver`; the others
split the neuron with the largest intercept loss in the worst open spec row (BaBSR, Bunel et
al. 2020). This is beta-CROWN's BaB without the beta multipliers: the split constraint only
tightens the split neuron's relaxation, so it is sound but weaker than beta-CROWN.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .bounds import DeadlineExceeded, propagate
from .branch import Outcome
from .falsify import (
    Check,
    check_most_violating,
    disjunct_margin,
    stacked_spec,
)
from .layers import Network
from .properties import Case


@dataclass
class Domains:
    """A batch of N domains: phases and prior bounds per layer (N, n_k), open disjuncts (N, K)."""

    splits: list[np.ndarray]
    lower: list[np.ndarray]
    upper: list[np.ndarray]
    act: np.ndarray

    def __len__(self) -> int:
        return int(self.act.shape[0])

    def take(self, idx: np.ndarray | slice) -> Domains:
        return Domains(
            [s[idx] for s in self.splits],
            [v[idx] for v in self.lower],
            [v[idx] for v in self.upper],
            self.act[idx],
        )


def _root(net: Network, case: Case) -> Domains:
    sizes = [w.shape[0] for w in net.weights[:-1]]
    return Domains(
        [np.zeros((1, n), dtype=np.int8) for n in sizes],
        [np.full((1, n), -np.inf) for n in sizes],
        [np.full((1, n), np.inf) for n in sizes],
        np.ones((1, len(case.disjuncts)), dtype=bool),
    )


def _children(dom: Domains, layer: np.ndarray, neuron: np.ndarray) -> Domains:
    n = len(dom)
    both = Domains(
        [np.concatenate([s, s]) for s in dom.splits],
        [np.concatenate([v, v]) for v in dom.lower],
        [np.concatenate([v, v]) for v in dom.upper],
        np.concatenate([dom.act, dom.act]),
    )
    for i in range(n):
        both.splits[layer[i]][i, neuron[i]] = 1
        both.splits[layer[i]][n + i, neuron[i]] = -1
    return both


def _choose(
    bnd_scores: list[np.ndarray],
    pre: list[tuple[np.ndarray, np.ndarray]],
    worst_row: np.ndarray,
    splits: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(layer, neuron, n_unstable) per domain: the free unstable neuron of largest score."""
    N = worst_row.shape[0]
    best = np.full(N, -1.0)
    layer = np.zeros(N, dtype=int)
    neuron = np.zeros(N, dtype=int)
    n_unstable = np.zeros(N, dtype=int)
    rows = np.arange(N)
    for k, ((lw, u), sc) in enumerate(zip(pre, bnd_scores)):
        unstable = (lw < 0) & (u > 0) & (splits[k] == 0)
        n_unstable += unstable.sum(axis=1)
        area = np.where(unstable, u * -lw / np.where(unstable, u - lw, 1.0), 0.0)
        score = np.where(unstable, sc[rows, worst_row] + 1e-6 * area, -1.0)
        j = score.argmax(axis=1)
        better = score[rows, j] > best
        best = np.where(better, score[rows, j], best)
        layer = np.where(better, k, layer)
        neuron = np.where(better, j, neuron)
    return layer, neuron, n_unstable


def relu_split(
    net: Network,
    case: Case,
    check: Check,
    deadline: float,
    *,
    batch: int = 16,
    leaf_unstable: int = 12,
    leaf_timeout_s: float = 20.0,
    mode: str = "backward",
) -> Outcome:
    """Decide ``case`` by ReLU branch and bound with z3 leaves."""
    C, d, group = stacked_spec(case)
    K = len(case.disjuncts)
    onehot = np.stack([group == k for k in range(K)], axis=1)
    stack = [_root(net, case)]
    stats = {"domains": 0, "z3_leaves": 0, "z3_unknown": 0}
    leaf_solver = None
    while stack:
        if time.monotonic() > deadline:
            return Outcome("timeout", stats=stats)
        dom = stack.pop()
        if len(dom) > batch:
            stack.append(dom.take(slice(0, len(dom) - batch)))
            dom = dom.take(slice(len(dom) - batch, None))
        stats["domains"] += len(dom)
        N = len(dom)
        lo, hi = np.repeat(case.lo[None], N, 0), np.repeat(case.hi[None], N, 0)
        prior = list(zip(dom.lower, dom.upper))
        try:
            bnd = propagate(
                net, lo, hi, C, splits=dom.splits, prior=prior, mode=mode, deadline=deadline
            )
        except DeadlineExceeded:
            return Outcome("timeout", stats=stats)
        row_refuted = bnd.spec_lb - d > 0
        act = (
            dom.act
            & ~(row_refuted[:, :, None] & onehot[None]).any(axis=1)
            & ~bnd.infeasible[:, None]
        )
        keep = act.any(axis=1)
        if not keep.any():
            continue
        idx = np.flatnonzero(keep)
        pre = [(lw[idx], u[idx]) for lw, u in bnd.pre]
        open_rows = (act[idx] @ onehot.T.astype(bool)) & ~row_refuted[idx]
        A = bnd.spec_A[idx]
        pts = np.concatenate(
            [np.where(A[:, r, :] > 0, case.lo, case.hi) for r in np.flatnonzero(open_rows.any(0))]
        )
        found = check_most_violating(pts, disjunct_margin(net.forward(pts), C, d, group, K), check)
        if found is not None:
            return Outcome("sat", x=found, stats=stats)
        gap = np.where(open_rows, bnd.spec_lb[idx] - d, np.inf)
        worst = gap.argmin(axis=1)
        layer, neuron, n_unst = _choose(
            [s[idx] for s in bnd.scores], pre, worst, [s[idx] for s in dom.splits]
        )
        leaf = n_unst <= leaf_unstable
        for i in np.flatnonzero(leaf):
            if leaf_solver is None:
                from .encoders import LeafSolver

                leaf_solver = LeafSolver(
                    net, case, [(p[0][0], p[1][0]) for p in _root_pre(net, case)]
                )
            stats["z3_leaves"] += 1
            timeout = min(leaf_timeout_s, deadline - time.monotonic())
            if timeout <= 0:
                return Outcome("timeout", stats=stats)
            status, x = leaf_solver.check(
                case.lo, case.hi, [(lv[i], uv[i]) for lv, uv in pre], act[idx[i]], timeout
            )
            if status == "sat" and x is not None:
                found = check(x)
                if found is not None:
                    return Outcome("sat", x=found, stats=stats)
                status = "unknown"  # real-valued witness that float32 does not confirm
            if status != "unsat":
                stats["z3_unknown"] += 1
        go = np.flatnonzero(~leaf)
        if go.size:
            sub = dom.take(idx[go])
            sub.act = act[idx[go]]
            sub.lower = [pre[k][0][go] for k in range(len(pre))]
            sub.upper = [pre[k][1][go] for k in range(len(pre))]
            stack.append(_children(sub, layer[go], neuron[go]))
    return Outcome("unknown" if stats["z3_unknown"] else "unsat", stats=stats)


def _root_pre(net: Network, case: Case) -> list[tuple[np.ndarray, np.ndarray]]:
    C, _, _ = stacked_spec(case)
    return propagate(net, case.lo[None], case.hi[None], C, mode="backward").pre

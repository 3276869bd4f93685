"""Branch and bound over input boxes (low-dimensional inputs) for one :class:`Case`.

Boxes are processed depth-first in batches: CROWN bounds refute disjuncts (a disjunct is
impossible on a box when one of its rows has ``lb(C_i y) > d_i``), the box centre and the box
corners minimising each open disjunct's linear lower bound are tried as counterexamples, and
open boxes are bisected along the dimension chosen by ``split_rule``: ``"smear"`` takes the
largest ``|A_i| * width_i`` of the linear bound (ReluVal's smear); ``"best"`` (default) bounds
both halves for every dimension and takes the one that most reduces the remaining deficit of
the open disjuncts (a one-step lookahead, like FSB for ReLU splits), falling back to smear
when no dimension makes progress. On ACAS Xu prop 1 the lookahead needs 10-100x fewer boxes,
but on other properties smear is faster: portfolio.py runs both. With ``alpha=True`` the boxes
that the cheap bound leaves open are bounded again by alpha-CROWN from the cheap bound's layer
bounds (alpha_box.py; ``alpha_layer_steps`` Adam steps on the intermediate layers, then the
spec rows': from half to several times the cost of the cheap bound, far tighter on deep nets
like ACAS Xu) before they are split.
A :class:`SplitProgress` reports the search every 2 s (elapsed, boxes left and visited, the
worst open gap), across the time slices and processes of portfolio.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .alpha_box import alpha_spec_lb, dense_chain
from .bounds import DeadlineExceeded, propagate
from .falsify import (
    Check,
    check_most_violating,
    disjunct_margin,
    stacked_spec,
)
from .layers import Network
from .properties import Case

Box = tuple[np.ndarray, np.ndarray, np.ndarray]  # lo (N, n), hi (N, n), open disjuncts (N, K)


@dataclass
class Outcome:
    """``status`` in unsat / sat / timeout / paused / unknown; ``x`` the checked counterexample."""

    status: str
    x: np.ndarray | None = None
    stack: list[Box] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    root_pre: list[tuple[np.ndarray, np.ndarray]] | None = None  # root layer bounds, if computed


@dataclass
class SplitProgress:
    """Progress of one branching rule's search, kept across its time slices.

    Every ``every_s`` seconds ``sink`` gets a dict: ``method`` (``input_split[RULE]``),
    ``elapsed_s`` since ``start``, ``domains_left`` (open boxes on the stack), ``visited`` (boxes
    bounded so far) and ``worst_gap`` (the smallest ``lb - d`` of an open disjunct's best row in
    the last batch with open boxes: negative, rising to 0 as the search closes). A plain object
    (``sink`` a module-level function) so that a worker process can take it along.
    """

    sink: Callable[[dict[str, Any]], None]
    rule: str
    start: float = field(default_factory=time.monotonic)
    every_s: float = 2.0
    visited: int = 0
    worst_gap: float = float("-inf")
    last: float = field(default_factory=time.monotonic)

    def open_gap(self, gap: np.ndarray, act: np.ndarray, onehot: np.ndarray) -> None:
        """Keep the smallest best-row gap ``lb - d`` (B, R) over the open disjuncts ``act``
        (B, K) of a batch (``onehot`` (R, K): the rows of each disjunct); none open: unchanged."""
        if act.any():
            per = np.where(onehot[None], gap[:, :, None], -np.inf).max(axis=1)  # (B, K)
            self.worst_gap = float(np.where(act, per, np.inf).min())

    def batch(self, boxes: int, stack: list[Box]) -> None:
        """Count a batch of ``boxes`` popped from ``stack`` (still open: counted as left); report
        when ``every_s`` has passed since the last report."""
        self.visited += boxes
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.sink(
                {
                    "method": f"input_split[{self.rule}]",
                    "elapsed_s": round(now - self.start, 1),
                    "domains_left": sum(len(b[0]) for b in stack) + boxes,
                    "visited": self.visited,
                    "worst_gap": self.worst_gap,
                }
            )


def initial_stack(case: Case) -> list[Box]:
    """The case's box with every disjunct open."""
    return [
        (case.lo[None].copy(), case.hi[None].copy(), np.ones((1, len(case.disjuncts)), dtype=bool))
    ]


def _pop(stack: list[Box], batch: int) -> Box:
    lo, hi, act = stack.pop()
    if lo.shape[0] > batch:
        stack.append((lo[:-batch], hi[:-batch], act[:-batch]))
        lo, hi, act = lo[-batch:], hi[-batch:], act[-batch:]
    return lo, hi, act


def _candidates(lo: np.ndarray, hi: np.ndarray, A: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Centres plus, per open row, the box corner minimising its linear lower bound."""
    pts = [(lo + hi) / 2]
    for r in np.flatnonzero(rows.any(axis=0)):
        pts.append(np.where(A[:, r, :] > 0, lo, hi))
    return np.concatenate(pts)


def _lookahead(
    net: Network,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    act: np.ndarray,
    onehot: np.ndarray,
) -> np.ndarray:
    """Per box and dimension, the worse child's worst open-disjunct margin after bisecting there."""
    m, n = lo.shape
    los, his = [], []
    for i in range(n):
        mid = (lo[:, i] + hi[:, i]) / 2
        h1, l2 = hi.copy(), lo.copy()
        h1[:, i] = mid
        l2[:, i] = mid
        los += [lo, l2]
        his += [h1, hi]
    bnd = propagate(net, np.concatenate(los), np.concatenate(his), C)
    gap = bnd.spec_lb - d  # (2 n m, R)
    per = np.where(onehot[None], gap[:, :, None], -np.inf).max(
        axis=1
    )  # (2 n m, K): best row per disjunct
    worst = np.where(np.tile(act, (2 * n, 1)), per, np.inf).min(axis=1).reshape(2 * n, m)
    return (
        np.minimum(worst[0::2], 0.0) + np.minimum(worst[1::2], 0.0)
    ).T  # (m, n): remaining deficit


def input_split(
    net: Network,
    case: Case,
    check: Check,
    deadline: float,
    *,
    stack: list[Box] | None = None,
    batch: int = 256,
    pause_at: float | None = None,
    max_boxes: int = 50_000_000,
    split_rule: str = "best",
    alpha: bool = False,
    alpha_layer_steps: int = 0,
    progress: SplitProgress | None = None,
) -> Outcome:
    """Decide ``case`` by input splitting; ``paused`` returns the open ``stack`` at ``pause_at``.

    ``alpha``: also bound the boxes the cheap bound leaves open with alpha-CROWN (alpha_box.py),
    with ``alpha_layer_steps`` optimisation steps on the intermediate layers.
    ``progress``: told about every batch (it reports every 2 s).
    """
    C, d, group = stacked_spec(case)
    K = len(case.disjuncts)
    onehot = np.stack([group == k for k in range(K)], axis=1)  # (R, K)
    stack = initial_stack(case) if stack is None else stack
    stats = {"boxes": 0, "batches": 0}
    chain = None
    while stack:
        now = time.monotonic()
        if now > deadline or stats["boxes"] > max_boxes:
            return Outcome("timeout", stack=stack, stats=stats)
        if pause_at is not None and now > pause_at:
            return Outcome("paused", stack=stack, stats=stats)
        lo, hi, act = _pop(stack, batch)
        stats["boxes"] += lo.shape[0]
        stats["batches"] += 1
        if progress is not None:
            progress.batch(lo.shape[0], stack)
        bnd = propagate(net, lo, hi, C)
        row_refuted = bnd.spec_lb - d > 0  # (B, R)
        refuted = (row_refuted[:, :, None] & onehot[None]).any(axis=1)  # (B, K)
        act = act & ~refuted
        keep = act.any(axis=1)
        if not keep.any():
            continue
        lo, hi, act, A, gap = lo[keep], hi[keep], act[keep], bnd.spec_A[keep], bnd.spec_lb[keep] - d
        row_refuted = row_refuted[keep]
        if alpha:
            chain = chain if chain is not None else dense_chain(net)
            pre = [(lw[keep], u[keep]) for lw, u in bnd.pre]
            try:
                lb = alpha_spec_lb(
                    chain, lo, hi, C, layer_steps=alpha_layer_steps, deadline=deadline, pre=pre
                )
            except DeadlineExceeded:
                stack.append((lo, hi, act))
                return Outcome("timeout", stack=stack, stats=stats)
            more = lb - d > 0
            row_refuted |= more
            act = act & ~(more[:, :, None] & onehot[None]).any(axis=1)
            if progress is not None:
                progress.open_gap(np.maximum(gap, lb - d), act, onehot)
            alive = act.any(axis=1)
            stats["alpha_refuted"] = stats.get("alpha_refuted", 0) + int((~alive).sum())
            if not alive.all():
                lo, hi, act, A, gap, row_refuted = (
                    v[alive] for v in (lo, hi, act, A, gap, row_refuted)
                )
                if lo.shape[0] == 0:
                    continue
        elif progress is not None:
            progress.open_gap(gap, act, onehot)
        open_rows = act @ onehot.T.astype(bool) & ~row_refuted  # (B, R)
        pts = _candidates(lo, hi, A, open_rows)
        found = check_most_violating(pts, disjunct_margin(net.forward(pts), C, d, group, K), check)
        if found is not None:
            return Outcome("sat", x=found, stats=stats)
        width = hi - lo
        tiny = width.max(axis=1) < 1e-9
        if tiny.any():  # a point-sized box neither refuted nor falsified: give up on it
            stats["stuck"] = stats.get("stuck", 0) + int(tiny.sum())
            lo, hi, act, A, open_rows, width, gap = (
                v[~tiny] for v in (lo, hi, act, A, open_rows, width, gap)
            )
            if lo.shape[0] == 0:
                continue
        score = np.einsum("brn,br->bn", np.abs(A), open_rows.astype(np.float64)) * width
        if split_rule == "best":
            smear = score / np.maximum(score.max(axis=1, keepdims=True), 1e-300)
            per = np.where(onehot[None], gap[:, :, None], -np.inf).max(axis=1)
            parent = 2 * np.minimum(np.where(act, per, np.inf).min(axis=1), 0.0)  # (B,)
            look = _lookahead(net, lo, hi, C, d, act, onehot) - parent[:, None]
            stalled = look.max(axis=1) < 1e-2 * np.abs(parent)
            score = np.where(
                stalled[:, None],
                smear,
                look / np.maximum(np.abs(parent[:, None]), 1e-300) + 1e-6 * smear,
            )
        score = np.where(width > 0, score + 1e-12 * width, -np.inf)
        dim = score.argmax(axis=1)
        idx = np.arange(lo.shape[0])
        mid = (lo[idx, dim] + hi[idx, dim]) / 2
        lo2, hi1 = lo.copy(), hi.copy()
        hi1[idx, dim] = mid
        lo2[idx, dim] = mid
        stack.append(
            (np.concatenate([lo, lo2]), np.concatenate([hi1, hi]), np.concatenate([act, act]))
        )
    return Outcome("unknown" if stats.get("stuck") else "unsat", stats=stats)

"""One process's ReLU branch and bound (bab.py): the search state and its loop.

:class:`Search` holds one case's spec (all of its disjuncts, or the few a search decides), the
input box and the statistics, and bounds a batch of domains (:meth:`Search.evaluate`: sound
bound, open rows, corner counterexamples) and picks their split neurons (filtered smart
branching, :meth:`Search.choose`). :class:`Loop` runs the search: pop, split, bound, push,
with z3 on the leaves and progress reports, in the caller's process or in a pool worker
(bab_pool.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .bounds import DeadlineExceeded
from .chain import ConvChain
from .crown import (
    Domains,
    WorkChain,
    backsub,
    optimise,
    refine,
    relax,
    spec_bound,
)
from .falsify import Check, check_most_violating, disjunct_margin, stacked_spec
from .layers import Network
from .properties import Case

Progress = Callable[[dict[str, Any]], None]
Entry = tuple[Domains, list[torch.Tensor], torch.Tensor]  # domains, lam of worst row, worst row


class Search:
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


class Loop:
    """The BaB loop of one :class:`Search` (its disjuncts), with the search's settings."""

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
        self, s: Search, stack: list[Entry], deadline: float, grow_to: int | None = None
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

    def _leaf(self, s: Search, dom: Domains, i: int, deadline: float) -> str:
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

"""Cheap falsification inside the input box: samples, box corners of the bound, and PGD.

Candidates are found on the float64 lowered network and handed to ``check`` (the float32
re-run of the original model, see :mod:`robustbench_lite.verify.complete`); only checked points
are returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .layers import Network
from .properties import Case

Check = Callable[[np.ndarray], "np.ndarray | None"]
#: The network as a torch function of flat float64 inputs (B, n_in) -> outputs (B, n_out), e.g.
#: a conv-native :class:`~.chain.ConvChain`'s ``forward``; None = the dense lowered network.
Forward = Callable[[Any], Any]


@dataclass(frozen=True)
class FalsifyParams:
    """Budget of the falsifier: uniform samples, PGD restarts and steps per case."""

    samples: int = 4096
    pgd_restarts: int = 8
    pgd_steps: int = 60
    max_seconds: float = 10.0


def stacked_spec(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All disjunct rows of ``case`` stacked: C (R, n_out), d (R,), group (R,) disjunct ids."""
    Cs = [C for C, _ in case.disjuncts]
    C = np.concatenate(Cs) if Cs else np.zeros((0, 0))
    d = np.concatenate([d for _, d in case.disjuncts])
    group = np.concatenate([np.full(len(c), k) for k, c in enumerate(Cs)]).astype(int)
    return C, d, group


def check_most_violating(
    points: np.ndarray, margin: np.ndarray, check: Check, *, tries: int = 4
) -> np.ndarray | None:
    """Re-check up to ``tries`` points with the most negative ``margin`` (<= 0); first confirmed wins.

    points (M, n_in); margin (M,) from :func:`disjunct_margin`. Returns a checked counterexample.
    """
    for i in np.argsort(margin)[:tries]:
        if margin[i] > 0:
            break
        found = check(points[i])
        if found is not None:
            return found
    return None


def disjunct_margin(
    y: np.ndarray, C: np.ndarray, d: np.ndarray, group: np.ndarray, n_groups: int
) -> np.ndarray:
    """Per point, the smallest over disjuncts of ``max_i (C_i y - d_i)``; <= 0 means violated.

    Args:
        y: outputs (P, n_out). Returns (P,).
    """
    viol = y @ C.T - d  # (P, R)
    out = np.full((y.shape[0], n_groups), -np.inf)
    for k in range(n_groups):
        rows = group == k
        if rows.any():
            out[:, k] = viol[:, rows].max(axis=1)
    return out.min(axis=1)


def _outputs(net: Network, forward: Forward | None, points: np.ndarray) -> np.ndarray:
    if forward is None:
        return net.forward(points)
    import torch

    with torch.no_grad():
        return forward(torch.from_numpy(points)).numpy()


def try_points(
    net: Network, case: Case, points: np.ndarray, check: Check, forward: Forward | None = None
) -> np.ndarray | None:
    """Check the points (P, n_in) whose float64 outputs violate the property (best first)."""
    C, d, group = stacked_spec(case)
    margin = disjunct_margin(_outputs(net, forward, points), C, d, group, len(case.disjuncts))
    for i in np.argsort(margin)[:8]:
        if margin[i] > 1e-6:
            break
        found = check(points[i])
        if found is not None:
            return found
    return None


def _pgd(
    net: Network,
    case: Case,
    starts: np.ndarray,
    steps: int,
    deadline: float,
    forward: Forward | None = None,
) -> np.ndarray:
    """Minimise the disjunct margin by signed-gradient steps projected onto the box."""
    import torch

    C, d, group = stacked_spec(case)
    Ws = [torch.from_numpy(w) for w in net.weights]
    bs = [torch.from_numpy(b) for b in net.biases]
    Ct, dt = torch.from_numpy(C), torch.from_numpy(d)
    lo, hi = torch.from_numpy(case.lo), torch.from_numpy(case.hi)
    x = torch.from_numpy(starts.copy())
    step = (hi - lo) / 8
    for it in range(steps):
        if time.monotonic() > deadline:
            break
        x.requires_grad_(True)
        a = x
        if forward is not None:
            a = forward(x)
        else:
            for k, (W, b) in enumerate(zip(Ws, bs)):
                a = a @ W.T + b
                if k < len(Ws) - 1:
                    a = torch.relu(a)
        viol = a @ Ct.T - dt
        per = torch.stack(
            [
                viol[:, torch.from_numpy(group == k)].max(dim=1).values
                for k in range(len(case.disjuncts))
            ],
            dim=1,
        )
        loss = per.min(dim=1).values.sum()
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = torch.clamp(x - step * grad.sign(), lo, hi)
        if it % 20 == 19:
            step = step / 2
    return x.detach().numpy()


def falsify(
    net: Network,
    case: Case,
    check: Check,
    deadline: float,
    *,
    seed: int = 0,
    params: FalsifyParams = FalsifyParams(),
    forward: Forward | None = None,
) -> np.ndarray | None:
    """A checked counterexample in ``case`` or None (uniform samples, then PGD); ``forward``
    computes the same network faster (e.g. conv-native), candidates are checked as always."""
    deadline = min(deadline, time.monotonic() + params.max_seconds)
    rng = np.random.default_rng(seed)
    lo, hi = case.lo, case.hi
    pts = np.concatenate([((lo + hi) / 2)[None], rng.uniform(lo, hi, (params.samples, lo.size))])
    found = try_points(net, case, pts, check, forward)
    if found is not None or time.monotonic() > deadline:
        return found
    C, d, group = stacked_spec(case)
    margin = disjunct_margin(_outputs(net, forward, pts), C, d, group, len(case.disjuncts))
    starts = pts[np.argsort(margin)[: params.pgd_restarts]]
    adv = _pgd(net, case, starts, params.pgd_steps, deadline, forward)
    return try_points(net, case, adv, check, forward)

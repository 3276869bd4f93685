"""alpha-CROWN bounds of the spec rows on a batch of input boxes, for input splitting.

The dense :class:`~.layers.Network` is viewed as a :class:`~.chain.ConvChain` of linear ops
(the same matrices, so the same function, no check needed), and each box gets the bounds of
crown.py: layer bounds, either CROWN on every layer intersected with intervals
(:func:`~.crown.root_bounds`) or the caller's (``pre``: input splitting passes the cheap
bound's, which cost nothing more and are nearly as tight), then alpha-CROWN on the
intermediate layers (:func:`~.crown.optimise_layers`, Xu et al. 2021; ``layer_steps``) and on
the spec rows (:func:`~.crown.optimise`). On ACAS Xu these are far tighter than the
forward/backward hybrid of bounds.py (one random batch of small boxes on net 3_9: worst deficit
229 -> 2). On 1014 open boxes of net 4_2 prop 2 (one core): the spec rows' 20 steps refuted 614
from the cheap layer bounds in 0.9 s and 644 from CROWN's, whose layer bounds alone took 3.3 s
(the cheap bound of the batch: 1.9 s); input splitting uses alpha only on the boxes that the
cheap bound leaves open.

Soundness is crown.py's: the optimiser only picks slopes in [0, 1] (any of which is valid),
and the returned bound is evaluated in float64 and widened (``Bound.sound``).
"""

from __future__ import annotations

import numpy as np
import torch

from . import crown
from .chain import ConvChain, Op
from .layers import Network


def dense_chain(net: Network) -> ConvChain:
    """``net`` as a chain of float64 linear ops (the same weights)."""
    blocks = tuple(
        (Op("linear", (W.shape[1],), (W.shape[0],), torch.from_numpy(W), torch.from_numpy(b)),)
        for W, b in zip(net.weights, net.biases)
    )
    shapes = ((net.weights[0].shape[1],),) + tuple((W.shape[0],) for W in net.weights)
    return ConvChain(blocks, shapes)


def alpha_spec_lb(
    chain: ConvChain,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    *,
    layer_steps: int = 5,
    spec_steps: int = 20,
    deadline: float | None = None,
    pre: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Sound lower bounds (B, R) of ``C y`` on boxes ``[lo, hi]`` (B, n0), float64.

    ``pre``: sound bounds (l, u), each (B, n_k), of every ReLU layer's pre-activations on the
    same boxes (the cheap bound's ``Bounds.pre``), used instead of computing CROWN's again.
    """
    tl, th = torch.from_numpy(np.ascontiguousarray(lo)), torch.from_numpy(np.ascontiguousarray(hi))
    Ct = torch.from_numpy(np.ascontiguousarray(C, dtype=np.float64))
    N = tl.shape[0]
    if pre is None:
        lower, upper = crown.root_bounds(chain, tl, th, deadline)
    else:
        lower = [torch.from_numpy(np.array(lw, dtype=np.float64)) for lw, _ in pre]
        upper = [torch.from_numpy(np.array(u, dtype=np.float64)) for _, u in pre]
    work = crown.WorkChain.of(chain)
    if layer_steps > 0:
        crown.optimise_layers(
            chain, lower, upper, tl, th, steps=layer_steps, deadline=deadline, work=work
        )
    R = Ct.shape[0]
    dom = crown.Domains(
        lower,
        upper,
        [torch.zeros(lw.shape, dtype=torch.int8) for lw in lower],
        [crown.adaptive_alpha(lw, up)[:, None].repeat(1, R, 1) for lw, up in zip(lower, upper)],
        [torch.zeros(N, R, lw.shape[1], dtype=lw.dtype) for lw in lower],
        torch.ones(N, 1, dtype=torch.bool),
    )
    crown.optimise(chain, dom, tl, th, Ct, steps=spec_steps, deadline=deadline, work=work)
    return crown.spec_bound(chain, dom, tl, th, Ct, record=False).sound.numpy()

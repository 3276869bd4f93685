"""Symbolic linear bound propagation (CROWN / DeepPoly back-substitution), batched, float64.

For a batch of input boxes ``[lo, hi]`` (B, n0) every hidden pre-activation ``z_k`` and every
output-spec row ``c^T y`` is bounded by back-substituting a linear function through the
network to the input, relaxing each unstable ReLU ``l < 0 < u`` by the triangle upper line
``a <= u (z - l) / (u - l)`` and the adaptive lower line ``a >= alpha z`` with
``alpha = 1 if u > -l else 0`` (CROWN, Zhang et al. 2018; DeepPoly, Singh et al. 2019).

Floating-point soundness (outward rounding): numpy has no directed rounding, so every bound is
widened by ``REL_SLACK * m + ABS_SLACK`` where ``m`` is the magnitude ``|A| max(|lo|,|hi|) +
sum |A_j||b_j|`` of the terms that were summed. With ``REL_SLACK = 1e-9`` this exceeds the
float64 error bound ``gamma_n = n u / (1 - n u)`` of the dot products involved by more than
three orders of magnitude for n < 10^5, so a rounded bound can never be tighter than the
real-valued one and rounding cannot turn a violated property into VERIFIED.

ReLU splits (for branch and bound) are given per box as ``splits[k]`` (B, n_k) in {-1, 0, 1}:
``+1`` restricts the domain to ``z >= 0`` (the neuron is linear there), ``-1`` to ``z <= 0``.
A domain whose split contradicts its bounds is empty and is marked ``infeasible``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .layers import Network


class DeadlineExceeded(Exception):
    """Raised between row chunks of a large back-substitution when the deadline has passed."""


ROW_CHUNK = 256
REL_SLACK = 1e-9
ABS_SLACK = 1e-12


@dataclass
class Bounds:
    """Result of :func:`propagate` for a batch of B boxes.

    ``pre[k]`` = (l, u), each (B, n_k): bounds of the pre-activation of ReLU layer ``k``.
    ``spec_lb`` (B, r): lower bounds of ``C y`` per spec row; ``spec_A`` (B, r, n0) and
    ``spec_c`` (B, r): the linear lower bound ``C y >= spec_A x + spec_c`` on the box.
    ``scores[k]`` (B, r, n_k): intercept loss of each relaxed neuron in the spec bound.
    ``infeasible`` (B,): domains emptied by contradicting splits (everything holds there).
    """

    pre: list[tuple[np.ndarray, np.ndarray]]
    spec_lb: np.ndarray
    spec_A: np.ndarray
    spec_c: np.ndarray
    infeasible: np.ndarray
    scores: list[np.ndarray]


def relaxation(lw: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ReLU linear relaxation: lower slope ``al``, upper slope ``su``, upper intercept ``tu``."""
    active = lw >= 0
    unstable = (lw < 0) & (u > 0)
    width = np.where(unstable, u - lw, 1.0)
    su = np.where(active, 1.0, np.where(unstable, u / width, 0.0))
    tu = np.where(unstable, -su * lw, 0.0)
    al = np.where(active, 1.0, np.where(unstable, (u > -lw).astype(np.float64), 0.0))
    return al, su, tu


def lower_bound(
    net: Network,
    A: np.ndarray | None,
    k: int,
    lo: np.ndarray,
    hi: np.ndarray,
    relax: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    record: list[np.ndarray] | None = None,
    rows: slice | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower bound of ``A z_k`` over the boxes, z_k the output of affine layer ``k``.

    Args:
        A: (B, m, n_{k+1}) coefficients, or None for the rows ``+e_i, -e_i`` (m = 2 n_{k+1}),
            i.e. lower bounds and negated upper bounds of every neuron of z_k.
        relax: per ReLU layer j < k, (al, su, tu) each (B, n_j).
        record: if given, receives per ReLU layer (last first) the intercept loss
            ``-min(A, 0) * tu`` (B, m, n_j) of each relaxed neuron (the BaBSR branching score).

    Returns:
        (lb (B, m) widened outward, A_in (B, m, n0), c (B, m)) with ``A z_k >= A_in x + c``.
    """
    B = lo.shape[0]
    if A is None:
        W, b = net.weights[k][rows or slice(None)], net.biases[k][rows or slice(None)]
        A = np.broadcast_to(np.concatenate([W, -W])[None], (B, 2 * W.shape[0], W.shape[1]))
        c = np.broadcast_to(np.concatenate([b, -b])[None], (B, 2 * b.shape[0])).copy()
        cabs = np.abs(c)
    else:
        c = A @ net.biases[k]
        cabs = np.abs(A) @ np.abs(net.biases[k])
        A = A @ net.weights[k]
    for j in range(k - 1, -1, -1):  # A holds the coefficients of a_j = relu(z_j)
        al, su, tu = relax[j]
        pos, neg = np.maximum(A, 0.0), np.minimum(A, 0.0)
        if record is not None:
            record.append(-neg * tu[:, None, :])
        c = c + np.einsum("bmn,bn->bm", neg, tu)
        cabs = cabs + np.einsum("bmn,bn->bm", -neg, np.abs(tu))
        A = pos * al[:, None, :] + neg * su[:, None, :]
        b = net.biases[j]
        c = c + A @ b
        cabs = cabs + np.abs(A) @ np.abs(b)
        A = A @ net.weights[j]
    pos, neg = np.maximum(A, 0.0), np.minimum(A, 0.0)
    lb = c + np.einsum("bmn,bn->bm", pos, lo) + np.einsum("bmn,bn->bm", neg, hi)
    mag = cabs + np.einsum("bmn,bn->bm", np.abs(A), np.maximum(np.abs(lo), np.abs(hi)))
    return lb - (REL_SLACK * mag + ABS_SLACK), A, c


def _forward_step(
    W: np.ndarray, b: np.ndarray, lin: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """Push linear lower/upper functions of the input (L, l0, U, u0, mag) through ``W x + b``."""
    L, l0, U, u0, mag = lin
    pos, neg = np.maximum(W, 0.0), np.minimum(W, 0.0)
    return (
        pos @ L + neg @ U,
        l0 @ pos.T + u0 @ neg.T + b,
        pos @ U + neg @ L,
        u0 @ pos.T + l0 @ neg.T + b,
        mag @ np.abs(W).T + np.abs(b),
    )


def _concretize(
    lin: tuple[np.ndarray, ...], lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    L, l0, U, u0, mag = lin
    xm = np.maximum(np.abs(lo), np.abs(hi))[:, :, None]
    lower = l0 + (np.maximum(L, 0.0) @ lo[:, :, None] + np.minimum(L, 0.0) @ hi[:, :, None])[..., 0]
    upper = u0 + (np.maximum(U, 0.0) @ hi[:, :, None] + np.minimum(U, 0.0) @ lo[:, :, None])[..., 0]
    slack = REL_SLACK * (mag + (np.abs(L) @ xm)[..., 0] + (np.abs(U) @ xm)[..., 0]) + ABS_SLACK
    return lower - slack, upper + slack


def _hybrid_layer(
    net: Network,
    k: int,
    lin: tuple[np.ndarray, ...],
    lo: np.ndarray,
    hi: np.ndarray,
    relax: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Forward bounds of layer ``k``, tightened by back-substitution where they are unstable."""
    lw, u = _concretize(lin, lo, hi)
    if k == 0:
        return lw, u
    idx = np.flatnonzero(((lw < 0) & (u > 0)).any(axis=0))
    if idx.size == 0:
        return lw, u
    n, B, m = lw.shape[1], lo.shape[0], idx.size
    E = np.zeros((2 * m, n))
    E[np.arange(m), idx] = 1.0
    E[m + np.arange(m), idx] = -1.0
    lb, _, _ = lower_bound(net, np.broadcast_to(E[None], (B, 2 * m, n)), k, lo, hi, relax)
    lw[:, idx] = np.maximum(lw[:, idx], lb[:, :m])
    u[:, idx] = np.minimum(u[:, idx], -lb[:, m:])
    return lw, u


def _backward_layer(
    net: Network,
    k: int,
    lo: np.ndarray,
    hi: np.ndarray,
    relax: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    deadline: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-substituted bounds of layer ``k``, in row chunks that check ``deadline``."""
    n = net.weights[k].shape[0]
    lws, ups = [], []
    for start in range(0, n, ROW_CHUNK):
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded()
        rows = slice(start, min(n, start + ROW_CHUNK))
        lb, _, _ = lower_bound(net, None, k, lo, hi, relax, rows=rows)
        m = rows.stop - rows.start
        lws.append(lb[:, :m])
        ups.append(-lb[:, m:])
    return np.concatenate(lws, axis=1), np.concatenate(ups, axis=1)


def propagate(
    net: Network,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    splits: list[np.ndarray] | None = None,
    prior: list[tuple[np.ndarray, np.ndarray]] | None = None,
    mode: str = "hybrid",
    deadline: float | None = None,
) -> Bounds:
    """Bounds of every hidden layer and of the spec rows ``C`` (r, n_out) on B boxes.

    ``mode="backward"`` bounds every hidden neuron by full back-substitution (CROWN,
    tightest); ``mode="forward"`` pushes linear functions of the input forward layer by
    layer (symbolic intervals, Wang et al. 2018), which is much cheaper when the input is
    low-dimensional. ``mode="hybrid"`` (default) takes forward bounds and back-substitutes
    only the neurons that they leave unstable in some box (the others are exact already). The spec rows are always bounded by back-substitution. ``prior`` bounds
    (valid for a superset of each box, e.g. the parent domain) are intersected with the new ones.
    Raises :class:`DeadlineExceeded` when ``deadline`` (time.monotonic) passes mid-way.
    """
    B, n0 = lo.shape
    relax: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pre: list[tuple[np.ndarray, np.ndarray]] = []
    infeasible = np.zeros(B, dtype=bool)
    lin: tuple[np.ndarray, ...] = ()
    if mode in ("forward", "hybrid"):
        eye = np.broadcast_to(np.eye(n0)[None], (B, n0, n0))
        zero = np.zeros((B, n0))
        lin = _forward_step(net.weights[0], net.biases[0], (eye, zero, eye, zero, zero))
    for k in range(net.n_relu_layers):
        if mode == "forward":
            lw, u = _concretize(lin, lo, hi)
        elif mode == "hybrid":
            lw, u = _hybrid_layer(net, k, lin, lo, hi, relax)
        else:
            lw, u = _backward_layer(net, k, lo, hi, relax, deadline)
        if prior is not None:
            lw, u = np.maximum(lw, prior[k][0]), np.minimum(u, prior[k][1])
        if splits is not None:
            s = splits[k]
            lw = np.where(s > 0, np.maximum(lw, 0.0), lw)
            u = np.where(s < 0, np.minimum(u, 0.0), u)
        infeasible |= (lw > u).any(axis=1)
        u = np.maximum(u, lw)  # keep empty domains well-formed; they are discarded anyway
        pre.append((lw, u))
        relax.append(relaxation(lw, u))
        if mode in ("forward", "hybrid") and k + 1 < net.n_relu_layers:
            al, su, tu = relax[-1]
            L, l0, U, u0, mag = lin
            lin = (
                L * al[:, :, None],
                l0 * al,
                U * su[:, :, None],
                u0 * su + tu,
                np.maximum(np.abs(lw), np.abs(u)) + mag,
            )
            lin = _forward_step(net.weights[k + 1], net.biases[k + 1], lin)
    Cb = np.broadcast_to(C[None], (B,) + C.shape)
    record: list[np.ndarray] = []
    spec_lb, spec_A, spec_c = lower_bound(net, Cb, net.n_relu_layers, lo, hi, relax, record)
    spec_lb = np.where(infeasible[:, None], np.inf, spec_lb)
    return Bounds(pre, spec_lb, spec_A, spec_c, infeasible, record[::-1])

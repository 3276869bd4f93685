"""Conv-native, batched CROWN bounds with optimised slopes (alpha) and split multipliers (beta).

For a batch of N domains (an input box plus ReLU split assignments, sharing one network) and
R spec rows ``C``, :func:`backsub` bounds ``C y`` from below by back-substituting the rows
through a :class:`~.chain.ConvChain`: through a linear layer as ``A W``, through a convolution
as a transposed convolution of ``A`` (never a dense matrix), through reshapes and per-channel
scales as themselves, and through each ReLU by its linear relaxation (CROWN, Zhang et al.
2018): an unstable neuron ``l < 0 < u`` gets the triangle upper line ``u (z - l) / (u - l)``
and a lower line ``alpha z`` with any ``alpha`` in [0, 1].

* **alpha-CROWN** (Xu et al. 2021, "Fast and Complete: Enabling Complete Neural Network
  Verification with Rapid and Massively Parallel Incomplete Verifiers", ICLR): the lower slopes
  are free parameters, one per (domain, spec row, neuron), optimised by projected Adam steps
  on the bound (:func:`optimise`); children inherit their parent's slopes.
* **beta-CROWN** (Wang et al. 2021, "Beta-CROWN: Efficient Bound Propagation with Per-neuron
  Split Constraints for Complete and Incomplete Neural Network Verification", NeurIPS): a
  split ``s z >= 0`` (s = +1 active, -1 inactive) enters the bound through a multiplier
  ``beta >= 0``: ``c^T y >= c^T y - beta s z`` on the domain, so the coefficient of ``z`` gets
  ``- beta s`` during back-substitution; ``beta`` is optimised with ``alpha``. The split
  neuron's relaxation is also fixed to its exact linear piece.

Deviations from the papers: intermediate-layer bounds are computed once per root (CROWN
intersected with interval bounds, then alpha-CROWN on the unstable neurons of each layer,
:func:`optimise_layers`, whose slopes are not kept) and, in the children, only tightened by
the splits (beta-CROWN's default also keeps them fixed in BaB) or, for small networks,
recomputed by plain CROWN (:func:`refine`); the spec rows' alpha and beta are optimised per
domain with Adam at a fixed step size, in float32 (:class:`WorkChain`), and the bound that
decides is evaluated again in float64.

Floating-point soundness follows ``verify/bounds.py``: the work is float64 and the returned
bound is widened by ``REL_SLACK * m + ABS_SLACK``, ``m`` the magnitude of the summed terms
(``|A| |b|`` per layer, ``|A| max(|lo|, |hi|)`` at the input, the relaxation intercepts).
Any alpha in [0, 1] and any beta >= 0 give a valid bound, so the optimiser can only change
how tight the bound is, never its validity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .bounds import ABS_SLACK, REL_SLACK, DeadlineExceeded
from .chain import ConvChain

ROW_CHUNK = 512


@dataclass
class Domains:
    """N domains: per ReLU layer the split-tightened pre-activation bounds ``lower``/``upper``
    (N, n_k), phases ``splits`` (N, n_k) int8 in {-1, 0, 1}, and per spec row the slopes
    ``alpha`` and multipliers ``beta`` (N, R, n_k); ``act`` (N, K) the open disjuncts."""

    lower: list[torch.Tensor]
    upper: list[torch.Tensor]
    splits: list[torch.Tensor]
    alpha: list[torch.Tensor]
    beta: list[torch.Tensor]
    act: torch.Tensor

    def __len__(self) -> int:
        return int(self.act.shape[0])

    def take(self, idx: torch.Tensor | slice) -> Domains:
        return Domains(
            [v[idx] for v in self.lower],
            [v[idx] for v in self.upper],
            [v[idx] for v in self.splits],
            [v[idx] for v in self.alpha],
            [v[idx] for v in self.beta],
            self.act[idx],
        )

    @staticmethod
    def cat(parts: list[Domains]) -> Domains:
        def join(vals: list[list[torch.Tensor]]) -> list[torch.Tensor]:
            return [torch.cat(v) for v in zip(*vals)]

        return Domains(
            join([p.lower for p in parts]),
            join([p.upper for p in parts]),
            join([p.splits for p in parts]),
            join([p.alpha for p in parts]),
            join([p.beta for p in parts]),
            torch.cat([p.act for p in parts]),
        )


def relax(
    lower: torch.Tensor, upper: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(active, unstable, upper slope su, upper intercept tu), each (N, n), of bounds (N, n)."""
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    width = torch.where(unstable, upper - lower, torch.ones_like(upper))
    su = torch.where(active, torch.ones_like(upper), torch.where(unstable, upper / width, 0.0))
    tu = torch.where(unstable, -su * lower, torch.zeros_like(upper))
    return active, unstable, su, tu


Relaxation = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def relaxations(lower: list[torch.Tensor], upper: list[torch.Tensor]) -> list[Relaxation]:
    """:func:`relax` of every layer (the same for every step of one optimisation)."""
    return [relax(lw, u) for lw, u in zip(lower, upper)]


def adaptive_alpha(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """CROWN's lower slope: 1 where ``u > -l`` else 0 (N, n)."""
    return (upper > -lower).to(lower.dtype)


@dataclass(frozen=True)
class WorkChain:
    """A copy of a chain in the dtype the optimiser works in (see :func:`optimise`)."""

    chain: ConvChain
    dtype: torch.dtype

    @staticmethod
    def of(chain: ConvChain, dtype: torch.dtype = torch.float32) -> WorkChain:
        return WorkChain(chain.cast(dtype), dtype)


@dataclass
class Bound:
    """``lb`` (N, R) without slack (differentiable), ``slack`` (N, R) to subtract for a sound
    bound, ``A_in`` (N, R, n0) the input coefficients, ``lam[k]`` (N, R, n_k) the coefficient
    of ReLU layer k's output in the bound (for branching; only when recorded)."""

    lb: torch.Tensor
    slack: torch.Tensor
    A_in: torch.Tensor
    lam: list[torch.Tensor]

    @property
    def sound(self) -> torch.Tensor:
        return self.lb.detach() - self.slack


def backsub(
    chain: ConvChain,
    start: int,
    A: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    lower: list[torch.Tensor],
    upper: list[torch.Tensor],
    *,
    alpha: list[torch.Tensor] | None = None,
    beta: list[torch.Tensor] | None = None,
    splits: list[torch.Tensor] | None = None,
    record: bool = False,
    magnitude: bool = True,
    relaxed: list[Relaxation] | None = None,
) -> Bound:
    """Lower bound of ``A . out_start`` (out_start the output of block ``start``) on N domains.

    Args:
        A: (N, R, n_{start+1}) row coefficients.
        lo, hi: (N, n0) input boxes.
        lower, upper: per ReLU layer j < start, (N, n_j) bounds (split-tightened).
        alpha: per layer j, (N, R, n_j) lower slopes (clamped to [0, 1]); None = adaptive.
        beta, splits: per layer j, (N, R, n_j) multipliers >= 0 and (N, n_j) phases.
        magnitude: False skips the magnitude of the summed terms (``slack`` is then only
            ``ABS_SLACK``, not sound): for the optimiser's steps, whose bounds decide nothing.
        relaxed: :func:`relaxations` of ``lower``/``upper``, when the caller already has them.
    """
    N, R = A.shape[:2]
    c = torch.zeros(N * R, dtype=A.dtype, device=A.device)
    cabs = torch.zeros_like(c)
    cur = A.reshape((N * R,) + chain.shapes[start + 1])
    lam: list[torch.Tensor] = []
    for k in range(start, -1, -1):
        cur, cb, cba = chain.block_backward(k, cur, magnitude)
        c, cabs = c + cb, cabs + cba
        if k == 0:
            break
        j = k - 1
        a = cur.reshape(N, R, -1)
        if record:
            lam.append(a.detach())
        active, unstable, su, tu = relaxed[j] if relaxed is not None else relax(lower[j], upper[j])
        al = (
            alpha[j].clamp(0.0, 1.0)
            if alpha is not None
            else adaptive_alpha(lower[j], upper[j])[:, None]
        )
        al = torch.where(active[:, None], 1.0, torch.where(unstable[:, None], al, 0.0))
        pos, neg = a.clamp(min=0), a.clamp(max=0)
        c = c + (neg * tu[:, None]).sum(-1).reshape(-1)
        if magnitude:
            cabs = cabs + (-neg * tu[:, None].abs()).sum(-1).reshape(-1)
        a = pos * al + neg * su[:, None]
        if beta is not None and splits is not None:
            a = a - beta[j].clamp(min=0.0) * splits[j][:, None].to(a.dtype)
        cur = a.reshape((N * R,) + chain.shapes[j + 1])
    A_in = cur.reshape(N, R, -1)
    pos, neg = A_in.clamp(min=0), A_in.clamp(max=0)
    lb = c.reshape(N, R) + (pos * lo[:, None]).sum(-1) + (neg * hi[:, None]).sum(-1)
    if not magnitude:
        return Bound(lb, torch.full_like(lb.detach(), ABS_SLACK), A_in.detach(), lam[::-1])
    xm = torch.maximum(lo.abs(), hi.abs())[:, None]
    mag = cabs.reshape(N, R) + (A_in.detach().abs() * xm).sum(-1)
    slack = REL_SLACK * mag.detach() + ABS_SLACK
    return Bound(lb, slack, A_in.detach(), lam[::-1])


def root_bounds(
    chain: ConvChain, lo: torch.Tensor, hi: torch.Tensor, deadline: float | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Bounds (sound, widened) of every ReLU layer's pre-activations on boxes (N, n0): CROWN
    intersected with interval arithmetic (Gowal et al. 2018) through the same block."""
    N = lo.shape[0]
    lower: list[torch.Tensor] = []
    upper: list[torch.Tensor] = []
    with torch.no_grad():
        ilo = lo.reshape((N,) + chain.shapes[0])
        ihi = hi.reshape((N,) + chain.shapes[0])
        for k, n in enumerate(chain.sizes()):
            ilo, ihi = chain.block_intervals(k, ilo, ihi)
            lows, ups = [], []
            for s in range(0, n, ROW_CHUNK):
                if deadline is not None and time.monotonic() > deadline:
                    raise DeadlineExceeded()
                m = min(n, s + ROW_CHUNK) - s
                eye = torch.zeros(m, n, dtype=lo.dtype, device=lo.device)
                eye[torch.arange(m), s + torch.arange(m)] = 1.0
                A = torch.cat([eye, -eye])[None].expand(N, 2 * m, n)
                b = backsub(chain, k, A, lo, hi, lower, upper)
                val = b.sound
                lows.append(val[:, :m])
                ups.append(-val[:, m:])
            lw = torch.maximum(torch.cat(lows, 1), ilo.reshape(N, -1))
            up = torch.minimum(torch.cat(ups, 1), ihi.reshape(N, -1))
            lower.append(lw)
            upper.append(torch.maximum(up, lw))
            ilo, ihi = lw.clamp(min=0).reshape(ilo.shape), up.clamp(min=0).reshape(ihi.shape)
    return lower, upper


def optimise_layers(
    chain: ConvChain,
    lower: list[torch.Tensor],
    upper: list[torch.Tensor],
    lo: torch.Tensor,
    hi: torch.Tensor,
    *,
    steps: int,
    lr: float = 0.1,
    deadline: float | None = None,
    work: WorkChain | None = None,
) -> None:
    """alpha-CROWN on the intermediate layers of the root (in place): the unstable neurons of
    each layer k >= 1 are bounded again with their own slopes for every earlier neuron (one set
    per bound row, as in Xu et al. 2021), optimised by ``steps`` Adam steps, then evaluated in
    float64 and intersected with the bounds they improve; later layers use the tightened ones.
    """
    N = lo.shape[0]
    dt = work.dtype if work is not None else lo.dtype
    net = work.chain if work is not None else chain
    for k in range(1, chain.n_relu_layers):
        lw, up = lower[k], upper[k]
        idx = torch.nonzero(((lw < 0) & (up > 0)).any(0)).flatten()
        n = lw.shape[1]
        for start in range(0, int(idx.numel()), ROW_CHUNK // 2):
            if deadline is not None and time.monotonic() > deadline:
                return
            sel = idx[start : start + ROW_CHUNK // 2]
            m = int(sel.numel())
            E = torch.zeros(m, n, dtype=lo.dtype, device=lo.device)
            E[torch.arange(m), sel] = 1.0
            A = torch.cat([E, -E])[None].expand(N, 2 * m, n)
            alpha = [
                adaptive_alpha(lower[j], upper[j])[:, None].repeat(1, 2 * m, 1).to(dt)
                for j in range(k)
            ]
            rows = Domains(lower[:k], upper[:k], [], alpha, [], torch.ones(N, 1, dtype=torch.bool))
            _adam(net, k, A.to(dt), lo.to(dt), hi.to(dt), rows, steps, lr, deadline)
            with torch.no_grad():
                val = backsub(
                    chain, k, A, lo, hi, lower, upper, alpha=[a.to(lo.dtype) for a in rows.alpha]
                ).sound
            lower[k][:, sel] = torch.maximum(lower[k][:, sel], val[:, :m])
            upper[k][:, sel] = torch.maximum(
                torch.minimum(upper[k][:, sel], -val[:, m:]), lower[k][:, sel]
            )


def _adam(
    net: ConvChain,
    start: int,
    A: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    dom: Domains,
    steps: int,
    lr: float,
    deadline: float | None,
) -> None:
    """Projected Adam (Kingma & Ba 2015, written out) on ``dom.alpha`` (to [0, 1]) and, where
    the domains have splits, ``dom.beta`` (to >= 0), maximising the summed bound of ``A``."""
    alpha = [a.detach().clone().requires_grad_(True) for a in dom.alpha]
    beta = [b.detach().clone().requires_grad_(True) for b in dom.beta]
    params = alpha + [b for b, s in zip(beta, dom.splits) if bool((s != 0).any())]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    lower = [v.to(lo.dtype) for v in dom.lower]
    upper = [v.to(lo.dtype) for v in dom.upper]
    splits = dom.splits if dom.splits else None
    relaxed = relaxations(lower[:start], upper[:start])
    for step in range(1, steps + 1):
        if deadline is not None and time.monotonic() > deadline:
            break
        b = backsub(
            net,
            start,
            A,
            lo,
            hi,
            lower,
            upper,
            alpha=alpha,
            beta=beta if splits else None,
            splits=splits,
            magnitude=False,
            relaxed=relaxed,
        )
        if not b.lb.requires_grad:  # no unstable neuron: nothing to optimise
            break
        grads = torch.autograd.grad(-b.lb.sum(), params, allow_unused=True)
        with torch.no_grad():
            for p, g, (m, v) in zip(params, grads, moments):
                if g is None:
                    continue
                m.mul_(0.9).add_(g, alpha=0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                m_hat = m / (1 - 0.9**step)
                v_hat = v / (1 - 0.999**step)
                p.sub_(lr * m_hat / (v_hat.sqrt() + 1e-8))
            for a in alpha:
                a.clamp_(0.0, 1.0)
            for bt in beta:
                bt.clamp_(min=0.0)
    dom.alpha = [a.detach() for a in alpha]
    dom.beta = [b.detach() for b in beta]


def refine(
    chain: ConvChain,
    dom: Domains,
    lo: torch.Tensor,
    hi: torch.Tensor,
    deadline: float | None = None,
    first: int = 1,
) -> None:
    """Recompute the intermediate bounds of split domains (in place), layer by layer from
    ``first`` (the layers up to a new split's own layer cannot change).

    Each layer's neurons that are unstable and free in some domain are bounded again by CROWN
    through the earlier layers' bounds as the splits tightened them (a split fixes a neuron to
    its exact linear piece, which tightens every later layer); the result is intersected with
    the inherited bounds and the domain's own splits are applied again. Domains whose bounds
    cross (``lower > upper``: the splits contradict each other) get ``act`` cleared.
    """
    N = len(dom)
    with torch.no_grad():
        for k in range(max(1, first), chain.n_relu_layers):
            lw, up, s = dom.lower[k], dom.upper[k], dom.splits[k]
            idx = torch.nonzero(((lw < 0) & (up > 0) & (s == 0)).any(0)).flatten()
            m = int(idx.numel())
            if m == 0:
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded()
            n = lw.shape[1]
            E = torch.zeros(m, n, dtype=lw.dtype, device=lw.device)
            E[torch.arange(m), idx] = 1.0
            A = torch.cat([E, -E])[None].expand(N, 2 * m, n)
            val = backsub(chain, k, A, lo, hi, dom.lower, dom.upper).sound
            new_lw, new_up = lw.clone(), up.clone()
            new_lw[:, idx] = torch.maximum(lw[:, idx], val[:, :m])
            new_up[:, idx] = torch.minimum(up[:, idx], -val[:, m:])
            new_lw = torch.where(s > 0, new_lw.clamp(min=0.0), new_lw)
            new_up = torch.where(s < 0, new_up.clamp(max=0.0), new_up)
            empty = (new_lw > new_up).any(1)
            dom.act = dom.act & ~empty[:, None]
            dom.lower[k] = new_lw
            dom.upper[k] = torch.maximum(new_up, new_lw)


def optimise(
    chain: ConvChain,
    dom: Domains,
    lo: torch.Tensor,
    hi: torch.Tensor,
    C: torch.Tensor,
    *,
    steps: int,
    lr: float = 0.1,
    deadline: float | None = None,
    work: WorkChain | None = None,
) -> None:
    """Projected Adam on ``alpha`` (to [0, 1]) and ``beta`` (to >= 0) maximising the bound of
    every spec row; updates ``dom.alpha`` / ``dom.beta`` in place.

    ``work`` runs the steps on a lower-precision copy of the chain (float32: about twice as
    fast on a CPU); only the parameters come back, and every bound that decides anything is
    computed again in float64 by :func:`spec_bound`, so the precision of the search for good
    parameters never touches soundness."""
    if steps <= 0:
        return
    dt = work.dtype if work is not None else lo.dtype
    net = work.chain if work is not None else chain
    cast = Domains(
        [v.to(dt) for v in dom.lower],
        [v.to(dt) for v in dom.upper],
        dom.splits,
        [a.to(dt) for a in dom.alpha],
        [b.to(dt) for b in dom.beta],
        dom.act,
    )
    A = C.to(dt)[None].expand(len(dom), -1, -1)
    _adam(net, chain.n_relu_layers, A, lo.to(dt), hi.to(dt), cast, steps, lr, deadline)
    dom.alpha = [a.to(C.dtype) for a in cast.alpha]
    dom.beta = [b.to(C.dtype) for b in cast.beta]


def spec_bound(
    chain: ConvChain,
    dom: Domains,
    lo: torch.Tensor,
    hi: torch.Tensor,
    C: torch.Tensor,
    *,
    record: bool = True,
) -> Bound:
    """The (sound via ``.sound``) bound of the spec rows ``C`` (R, n_out) on the domains."""
    with torch.no_grad():
        A = C[None].expand(len(dom), -1, -1)
        return backsub(
            chain,
            chain.n_relu_layers,
            A,
            lo,
            hi,
            dom.lower,
            dom.upper,
            alpha=dom.alpha,
            beta=dom.beta,
            splits=dom.splits,
            record=record,
        )

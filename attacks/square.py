"""Square Attack (Andriushchenko et al. 2020, arXiv 1912.00049): score-based black-box, linf and l2.

Random search over square-shaped updates: each iteration draws, for every still-robust sample,
one square window of side ``s`` (``s`` shrinks with the schedule of ``p``, the fraction of
pixels changed) and a random update inside it; the update is kept when it lowers the loss
(margin loss for untargeted goals, cross-entropy of the target for targeted ones). linf updates
set the window to ``x +- eps`` per channel; l2 updates move mass between two windows with the
paper's nested-square profile, keeping the total norm at ``eps``. The model is only queried
for logits, under ``torch.no_grad``.

Query count: one query for the initial point plus one per iteration while the sample is still
robust; a sample never gets more than ``n_queries`` queries. Windows are drawn per sample (as
in the paper's reference code), not one window for the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm, require_tensor

_SCHEDULE = (
    (10, 1),
    (50, 2),
    (200, 4),
    (500, 8),
    (1000, 16),
    (2000, 32),
    (4000, 64),
    (6000, 128),
    (8000, 256),
)


def p_schedule(it: int, n_queries: int, p_init: float, rescale: bool) -> float:
    """The paper's piecewise-constant schedule of p (halved at 10, 50, 200, ... iterations)."""
    if rescale:
        it = int(it / n_queries * 10000)
    for limit, div in _SCHEDULE:
        if it <= limit:
            return p_init / div
    return p_init / 512


def _losses(
    logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(margin (N,): <= 0 means success, loss (N,) to minimise)."""
    cls = y if t is None else t
    picked = logits.gather(1, cls[:, None])[:, 0]
    others = logits.scatter(1, cls[:, None], float("-inf")).amax(dim=1)
    if t is None:
        return picked - others, picked - others
    return others - picked, F.cross_entropy(logits, t, reduction="none")


def _windows(
    n: int, h: int, w: int, s: int, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(n, 1, h, w) bool masks of one random s x s window per sample."""
    top = torch.randint(0, h - s + 1, (n,), generator=gen).to(device)
    left = torch.randint(0, w - s + 1, (n,), generator=gen).to(device)
    rows = torch.arange(h, device=device)[None, :]
    cols = torch.arange(w, device=device)[None, :]
    in_r = (rows >= top[:, None]) & (rows < top[:, None] + s)
    in_c = (cols >= left[:, None]) & (cols < left[:, None] + s)
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]


def _signs(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, shape, generator=gen) * 2 - 1).float().to(device)


def _eta(s: int, device: torch.device) -> torch.Tensor:
    """The paper's l2 window profile (s, s): two nested-square halves of opposite sign, unit l2."""

    def half(a: int, b: int) -> torch.Tensor:
        d = torch.zeros(a, b)
        cx, cy = a // 2, b // 2
        for k in range(max(cx + 1, cy + 1)):
            d[max(cx - k, 0) : min(cx + k + 1, a), max(cy - k, 0) : min(cy + k + 1, b)] += (
                1.0 / (k + 1) ** 2
            )
        return d / d.norm().clamp_min(1e-12)

    out = torch.cat([half(s // 2, s), -half(s - s // 2, s)]) if s > 1 else torch.ones(1, 1)
    return (out / out.norm().clamp_min(1e-12)).to(device)


@register_attack("square")
@dataclass(frozen=True)
class Square(Attack):
    """Square Attack: query-efficient black-box random search (linf and l2).

    Args:
        n_queries: query budget per sample (initial point included); never exceeded.
        p_init: initial fraction of pixels changed per update (0.8 in AutoAttack for linf).
        rescale_schedule: stretch the p schedule (tuned for 10,000 queries) to ``n_queries``.

    Shape: x (N, C, H, W) images (other shapes are treated as (N, 1, 1, D)) in the model's
    bounds; y (N,); targets (N,) for targeted goals.

    Example::

        result = rbl.create_attack("square", n_queries=1000)(model, x, y, "linf:0.1")
        result.queries  # mean queries per sample
    """

    supports = frozenset(
        (n, g) for n in (Norm.LINF, Norm.L2) for g in (Goal.UNTARGETED, Goal.TARGETED)
    )
    quick_params = {"n_queries": 100}
    n_queries: int = 5000
    p_init: float = 0.8
    rescale_schedule: bool = True

    def __post_init__(self) -> None:
        if self.n_queries < 1:
            raise ParameterError("n_queries", f"{self.n_queries} must be >= 1")
        if not 0.0 < self.p_init <= 1.0:
            raise ParameterError("p_init", f"{self.p_init} must lie in (0, 1], e.g. 0.8")

    def run(
        self,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> AttackOutput:
        x = require_tensor(x, self.name)
        shape = x.shape
        x4 = x.reshape(len(x), 1, 1, -1) if x.dim() != 4 else x
        with torch.no_grad():
            best, queries = self._search(model, x4, y, target, threat, generator, shape[1:])
        metrics = {
            "queries_max": int(queries.max()) if len(queries) else 0,
            "queries_median": float(queries.float().median()) if len(queries) else 0.0,
        }
        mean_q = int(round(float(queries.float().mean()))) if len(queries) else 0
        return AttackOutput(best.reshape(shape), queries=mean_q, metrics=metrics)

    def _query(self, model: Model, x4: torch.Tensor, sample_shape: torch.Size) -> torch.Tensor:
        return model(x4.reshape(-1, *sample_shape))

    def _search(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor | None,
        threat: ThreatModel,
        gen: torch.Generator,
        shape: torch.Size,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random search on (N, C, H, W) ``x``; returns (best points, queries per sample).

        ``shape`` is the model's sample shape (``x`` is reshaped to it for every query).
        """
        lo, hi = model.bounds
        h, w = x.shape[2:]
        x_best = self._init(x, threat, gen).clamp(lo, hi)
        margin, loss = _losses(self._query(model, x_best, shape), y, t)
        queries = torch.ones(len(y), dtype=torch.long, device=x.device)
        act = (margin > 0).nonzero()[:, 0]
        xa, ba, ma, la, ya = x[act], x_best[act], margin[act], loss[act], y[act]
        ta, qa = (None if t is None else t[act]), queries[act]
        for it in range(self.n_queries - 1):
            if not len(act):
                break
            p = p_schedule(it, self.n_queries, self.p_init, self.rescale_schedule)
            if threat.norm is Norm.LINF:
                s = min(max(int(round(math.sqrt(p * h * w))), 1), h, w)
                cand = self._linf_update(xa, ba, s, threat.eps, gen)
            else:
                s = max(int(round(math.sqrt(p * h * w))), 3)
                cand = self._l2_update(xa, ba, min(s + (s % 2 == 0), h, w), threat.eps, gen)
            cand = cand.clamp(lo, hi)
            m_new, l_new = _losses(self._query(model, cand, shape), ya, ta)
            qa += 1  # rows broken since the last compaction are queried (and counted) too
            frozen = ma <= 0
            improved = (l_new < la) & ~frozen
            keep = improved | ((m_new <= 0) & ~frozen)
            la = torch.where(improved, l_new, la)
            ma = torch.where(keep, m_new, ma)
            ba = torch.where(keep[:, None, None, None], cand, ba)
            done = ma <= 0
            n_done = int(done.sum())
            if n_done and (n_done * 16 >= len(act) or it == self.n_queries - 2):
                x_best[act], queries[act] = ba, qa
                keep_rows = ~done
                act, xa, ba, ma, la, ya, qa = (v[keep_rows] for v in (act, xa, ba, ma, la, ya, qa))
                ta = None if ta is None else ta[keep_rows]
        x_best[act], queries[act] = ba, qa
        return x_best, queries

    def _init(self, x: torch.Tensor, threat: ThreatModel, gen: torch.Generator) -> torch.Tensor:
        """linf: vertical stripes of +-eps; l2: a grid of +-eta windows scaled to norm eps."""
        n, c, h, w = x.shape
        if threat.norm is Norm.LINF:
            return x + threat.eps * _signs((n, c, 1, w), gen, x.device)
        s = max(h // 5, 1)
        delta = torch.zeros_like(x)
        start = (h - s * 5) // 2 if h >= 5 else 0
        for vh in range(start, h - s + 1, s):
            for vw in range(start, w - s + 1, s):
                delta[:, :, vh : vh + s, vw : vw + s] += _eta(s, x.device) * _signs(
                    (n, c, 1, 1), gen, x.device
                )
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        return x + delta * (threat.eps / norms)[:, None, None, None]

    def _linf_update(
        self, x: torch.Tensor, best: torch.Tensor, s: int, eps: float, gen: torch.Generator
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        win = _windows(n, h, w, s, gen, x.device)
        new = x + eps * _signs((n, c, 1, 1), gen, x.device)
        return torch.where(win, new, best)

    def _l2_update(
        self, x: torch.Tensor, best: torch.Tensor, s: int, eps: float, gen: torch.Generator
    ) -> torch.Tensor:
        """Move the perturbation mass of windows 1 and 2 into window 1 with a fresh eta profile."""
        n, c, h, w = x.shape
        delta = best - x
        w1, w2 = _windows(n, h, w, s, gen, x.device), _windows(n, h, w, s, gen, x.device)
        norm_img = delta.flatten(1).norm(dim=1)[:, None, None, None]
        norm_w1 = (delta * w1).pow(2).sum(dim=(2, 3), keepdim=True).sqrt()
        norm_both = (delta * (w1 | w2)).pow(2).sum(dim=(2, 3), keepdim=True).sqrt()
        eta = torch.zeros_like(x)
        eta_s = _eta(s, x.device)[None, None] * _signs((n, c, 1, 1), gen, x.device)
        eta[w1.expand_as(x)] = eta_s.expand(n, c, s, s).reshape(-1)
        new = eta + delta * w1 / norm_w1.clamp_min(1e-12)
        new_norm = new.pow(2).sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        budget = ((eps**2 - norm_img**2).clamp_min(0) / c + norm_both**2).sqrt()
        delta = torch.where(w1 | w2, torch.zeros_like(delta), delta)
        delta = torch.where(w1, new / new_norm * budget, delta)
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        return x + delta * (eps / norms)[:, None, None, None]

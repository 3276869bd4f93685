"""SDA: the sparse dynamic attack on binary event inputs (Lun et al., CVPR 2025, arXiv 2503.03272).

Untargeted, minimal-L0 flips of a binary tensor (e.g. event frames (N, T, 2, H, W)), by
generation and reduction, as in the official ``SDA`` (``utils/attack.py`` of ryime/PDSG-SDA):

Generation, iteration n = 0..max_iter-1, for every sample not yet misclassified:

1. g = dL/dx at the current adversarial input, through the surrogate twin (PDSG by default),
   with L = ReLU(z_y - max_{j != y} z_j) on the time-averaged logits (CW margin);
2. keep only contributing coordinates, 0 <= x - sign(g) <= 1 (a flip lowers L to first order);
3. exact zeros of g get random values below the smallest nonzero |g| of the sample; already
   selected coordinates are excluded;
4. candidates: the top-k by |g|, k = (n + 1) * k_init;
5. each candidate is flipped *alone* (a parallel batch, ``batch_limit`` inputs per forward)
   and its finite difference FD = L(flipped) - L(current) is measured;
6. all candidates are selected, then those with FD > 0 are unselected (their FD set to inf);
7. x_adv = x XOR selected: flips are always relative to the *original* input;
8. stop as soon as the real model misclassifies x_adv.

Reduction: the selected flips are sorted by |FD| (smallest first) and a binary search finds the
longest prefix that can be un-flipped while the input stays misclassified (every probe is
checked on the real model, so the reduction never turns a success into a failure).

A sample never broken, or broken with more flips than the threat's l0 eps, is returned clean
(a failure). Already misclassified samples are returned unchanged.

Reported: the base class measures each sample's L0 (``size_norms``), so reports carry
``l0_mean`` / ``l0_median`` over the re-checked successes only (a failure never counts as
L0 = 0); the attack adds the surrogate (``surrogate``, ``surrogate_alpha``), the real network's
spikes per sample on clean and returned inputs, ``over_budget`` (successes dropped for
exceeding eps) and ``forwards_per_sample``. :func:`l0_summary` gives the paper's table.

Deviations from the official code, none of which changes a sample's trajectory semantics:
samples are attacked in one batch instead of one at a time; PDSG's sigma is computed per sample
(``per_sample=True``), which is exactly the sigma of a batch of one; the loss is summed over
samples so each sample gets its own gradient; a candidate never re-selects an already selected
coordinate (the official top-k could, once k exceeds the unselected count); FD and success
checks use the real model (its forward equals the twin's).

Ablations (for baselines): ``fd_filter=False`` keeps every top-k candidate (the naive top-|g|
flip), ``reduction=False`` skips the reduction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import DataError, ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm
from robustbench_lite.worlds.snn import SURROGATES, parse_surrogate, with_surrogate

from ._losses import margin
from ._snn_metrics import snn_metrics


def cw_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ReLU(z_y - max_{j != y} z_j), shape (N,)."""
    return (-margin(logits, y, None)).clamp_min(0)


def l0_summary(
    l0: torch.Tensor, broken: torch.Tensor, attacked: torch.Tensor, thresholds: tuple[int, ...]
) -> dict[str, float]:
    """SDA's metrics: success rate over ``attacked`` samples, L0 statistics over successes only.

    Args:
        l0: (N,) number of changed entries per sample.
        broken: (N,) bool, success of each sample.
        attacked: (N,) bool, the samples that count (clean-correct ones).
        thresholds: report the fraction of successes with L0 below each.
    """
    ok = broken & attacked
    n_att = int(attacked.sum())
    vals = l0[ok].double()
    out = {"sda_success_rate": float(ok.sum()) / n_att if n_att else float("nan")}
    out["l0_mean"] = float(vals.mean()) if vals.numel() else float("nan")
    out["l0_median"] = float(vals.median()) if vals.numel() else float("nan")
    for t in thresholds:
        out[f"frac_l0_below_{t}"] = (
            float((vals < t).double().mean()) if vals.numel() else float("nan")
        )
    return out


@register_attack("sda")
@dataclass(frozen=True)
class SDA(Attack):
    """Sparse dynamic attack on binary inputs, threat ``l0:EPS`` (EPS = most flips allowed).

    Args:
        k_init: candidates per iteration grow as (n + 1) * k_init (paper: 10).
        max_iter: generation iterations N (paper: 500).
        batch_limit: flipped copies per forward pass in the finite-difference step.
        surrogate: surrogate gradient of the twin: ``pdsg`` (paper), ``atan``, ``sigmoid``, ``ste``.
        alpha: width of ``atan`` / ``sigmoid``.
        fd_filter: keep only candidates whose single flip does not raise the loss (paper: yes).
        reduction: run the binary-search reduction (paper: yes).

    Shape: x (N, ...) with entries in {0, 1}; y (N,). Output entries stay in {0, 1}.

    Example::

        rbl.create_attack("sda", k_init=4, max_iter=100)(model, x, y, "l0:500")
    """

    supports = frozenset({(Norm.L0, Goal.UNTARGETED)})
    quick_params = {"k_init": 4, "max_iter": 20}
    size_norms = ("l0",)
    metric_names = (
        "l0_mean",
        "l0_median",
        "surrogate_alpha",
        "spikes_per_sample",
        "spikes_per_sample_adv",
        "over_budget",
        "forwards_per_sample",
    )
    k_init: int = 10
    max_iter: int = 500
    batch_limit: int = 256
    surrogate: str = "pdsg"
    alpha: float | None = None
    fd_filter: bool = True
    reduction: bool = True

    def __post_init__(self) -> None:
        if self.surrogate not in SURROGATES:
            raise ParameterError(
                "surrogate", f"{self.surrogate!r}: choose one of {', '.join(SURROGATES)}"
            )
        for param, value in (
            ("k_init", self.k_init),
            ("max_iter", self.max_iter),
            ("batch_limit", self.batch_limit),
        ):
            if value < 1:
                raise ParameterError(param, f"{value} must be >= 1")

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
        if not isinstance(x, torch.Tensor) or not ((x == 0) | (x == 1)).all():
            raise DataError(
                "sda needs binary inputs (every entry 0 or 1), e.g. rbl.load_data('nmnist')"
            )
        spec = parse_surrogate(self.surrogate, self.alpha, per_sample=True)
        grad_net = with_surrogate(model, spec).differentiable
        x0 = x.detach().flatten(1)
        with torch.no_grad():
            attacked = model(x).argmax(dim=1) == y
        counter = {"forwards": 0}
        selected, fd, broken = self._generate(
            model, grad_net, x0, x.shape, y, attacked, generator, counter
        )
        adv = torch.where(selected, 1 - x0, x0)
        if self.reduction and broken.any():
            adv = self._reduce(model, x0, adv, selected, fd, broken, x.shape, y, counter)
        l0 = (adv != x0).sum(dim=1)
        over = broken & (l0 > threat.eps)
        keep = broken & ~over
        adv = torch.where(keep[:, None], adv, x0).reshape(x.shape)
        metrics = snn_metrics(model, spec, x, adv)
        metrics["over_budget"] = int(over.sum())
        metrics["forwards_per_sample"] = counter["forwards"] / max(1, int(attacked.sum()))
        return AttackOutput(adv, metrics=metrics)

    # ------------------------------------------------------------------ generation
    def _generate(
        self,
        model: Model,
        grad_net: Model,
        x0: torch.Tensor,
        shape: torch.Size,
        y: torch.Tensor,
        attacked: torch.Tensor,
        generator: torch.Generator,
        counter: dict[str, int],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(selected (N, D) bool, FD (N, D) with inf where unselected, broken (N,) bool)."""
        n_all, dim = x0.shape
        selected = torch.zeros_like(x0, dtype=torch.bool)
        fd = torch.full_like(x0, float("inf"))
        broken = torch.zeros(n_all, dtype=torch.bool, device=x0.device)
        for n in range(self.max_iter):
            rows = (attacked & ~broken).nonzero()[:, 0]
            if rows.numel() == 0:
                break
            sel, cur = selected[rows], torch.where(selected[rows], 1 - x0[rows], x0[rows])
            xa = cur.reshape(-1, *shape[1:]).requires_grad_(True)
            loss = cw_loss(grad_net(xa), y[rows])
            (g,) = torch.autograd.grad(loss.sum(), xa)
            counter["forwards"] += len(rows)
            cand, valid = self._candidates(
                cur, g.flatten(1), sel, min((n + 1) * self.k_init, dim), generator
            )
            fdv = self._finite_differences(
                model, cur, cand, valid, y[rows], loss.detach(), shape, counter
            )
            f = fd[rows]
            r_idx = torch.arange(len(rows), device=x0.device)[:, None].expand_as(cand)
            f[r_idx[valid], cand[valid]] = fdv[valid]
            sel[r_idx[valid], cand[valid]] = True
            bad = f > 0
            sel &= ~bad
            f[bad] = float("inf")
            selected[rows], fd[rows] = sel, f
            with torch.no_grad():
                adv = torch.where(sel, 1 - x0[rows], x0[rows]).reshape(-1, *shape[1:])
                broken[rows] = model(adv).argmax(dim=1) != y[rows]
            counter["forwards"] += len(rows)
        return selected, fd, broken

    @staticmethod
    def _candidates(
        cur: torch.Tensor, g: torch.Tensor, sel: torch.Tensor, k: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k contributing coordinates by |g|, (A, k) indices and (A, k) validity."""
        m = cur - g.sign()
        g = g * ((m >= 0) & (m <= 1))
        absg = g.abs()
        nonzero_min = torch.where(absg > 0, absg, torch.full_like(absg, float("inf"))).amin(
            dim=1, keepdim=True
        )
        scale = torch.where(torch.isfinite(nonzero_min), nonzero_min, torch.ones_like(nonzero_min))
        noise = (
            torch.rand(absg.shape, generator=generator, dtype=absg.dtype).to(absg.device) * scale
        )
        score = torch.where(absg == 0, noise, absg)
        score = torch.where(sel, torch.full_like(score, -1.0), score)
        top = score.topk(k, dim=1)
        return top.indices, top.values >= 0

    def _finite_differences(
        self,
        model: Model,
        cur: torch.Tensor,
        cand: torch.Tensor,
        valid: torch.Tensor,
        y: torch.Tensor,
        loss: torch.Tensor,
        shape: torch.Size,
        counter: dict[str, int],
    ) -> torch.Tensor:
        """(A, k) FD = L(cur with one candidate flipped) - L(cur); 0 for all if not fd_filter."""
        out = torch.zeros(cand.shape, dtype=cur.dtype, device=cur.device)
        if not self.fd_filter:
            return out
        pairs = valid.nonzero()
        for chunk in pairs.split(self.batch_limit):
            r, j = chunk[:, 0], chunk[:, 1]
            probe = cur[r].clone()
            col = cand[r, j]
            ar = torch.arange(len(r), device=cur.device)
            probe[ar, col] = 1 - probe[ar, col]
            with torch.no_grad():
                out[r, j] = cw_loss(model(probe.reshape(-1, *shape[1:])), y[r]) - loss[r]
            counter["forwards"] += len(r)
        return out

    # ------------------------------------------------------------------ reduction
    def _reduce(
        self,
        model: Model,
        x0: torch.Tensor,
        adv: torch.Tensor,
        selected: torch.Tensor,
        fd: torch.Tensor,
        broken: torch.Tensor,
        shape: torch.Size,
        y: torch.Tensor,
        counter: dict[str, int],
    ) -> torch.Tensor:
        """Binary search, per broken sample, for the longest low-|FD| prefix that can be undone."""
        rows = broken.nonzero()[:, 0]
        sel, base = selected[rows], adv[rows]
        key = torch.where(sel, fd[rows].abs(), torch.full_like(base, float("inf")))
        order = key.argsort(dim=1, stable=True)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(order.shape[1], device=order.device).expand_as(order)
        )
        left = torch.zeros(len(rows), dtype=torch.long, device=x0.device)
        right = sel.sum(dim=1) - 1
        final = base.clone()
        while bool((left <= right).any()):
            act = (left <= right).nonzero()[:, 0]
            ptr = (left[act] + right[act]) // 2
            undo = sel[act] & (rank[act] <= ptr[:, None])
            temp = torch.where(undo, x0[rows[act]], base[act])
            with torch.no_grad():
                hit = model(temp.reshape(-1, *shape[1:])).argmax(dim=1) != y[rows[act]]
            counter["forwards"] += len(act)
            final[act[hit]] = temp[hit]
            left[act[hit]] = ptr[hit] + 1
            right[act[~hit]] = ptr[~hit] - 1
        out = adv.clone()
        out[rows] = final
        return out

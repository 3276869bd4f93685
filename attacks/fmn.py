"""Fast Minimum-Norm attack (Pintor et al., NeurIPS 2021, arXiv 2102.12827), linf and l2.

FMN looks for the smallest perturbation that changes the decision. Every step ascends the logit
margin (best other logit minus true logit; target minus best other for targeted goals) along
the l2-normalised gradient, then projects onto a ball of radius ``eps_k`` that adapts: while the
point is adversarial, ``eps_k`` shrinks by ``(1 - gamma)`` (and never exceeds the smallest
adversarial norm found); otherwise it grows by ``(1 + gamma)``, or, before any adversarial point
was found, jumps to the first-order estimate of the boundary distance
``||delta|| + |margin| / ||grad||_dual``, here times ``(1 + gamma)`` (a deviation: without
the overshoot a locally linear model leaves the iterate exactly on the boundary). Step size ``alpha`` and ``gamma`` follow cosine
annealing. The smallest adversarial point found is returned; the base class then projects it
into the threat set, so a minimum-norm result larger than the threat's ``eps`` is shrunk.

Metrics: ``found`` (fraction with any adversarial point, at any norm). The perturbation sizes
come from the base class (``size_norms``: l2 and linf of each returned point, measured after the
projection into the threat set), so reports carry ``l2_mean`` / ``l2_median`` and ``linf_mean``
/ ``linf_median`` over the clean-correct, re-checked successes only, computed once over all
samples however the run is sharded (a median of shard medians is no median). Read the threat's
own norm: with a large ``eps`` its median is the median minimum adversarial norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm, require_tensor

from ._losses import margin


def _rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm is Norm.LINF else flat.norm(dim=1)


def _project(delta: torch.Tensor, eps: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Project each row of ``delta`` onto the ``norm`` ball of its own radius ``eps`` (N,)."""
    if norm is Norm.LINF:
        e = _rows(eps, delta)
        return torch.maximum(torch.minimum(delta, e), -e)
    factor = (eps / _norm(delta, norm).clamp_min(1e-12)).clamp(max=1.0)
    return delta * _rows(factor, delta)


@register_attack("fmn")
@dataclass(frozen=True)
class FMN(Attack):
    """Fast Minimum-Norm attack: the smallest adversarial perturbation it can find.

    Args:
        steps: iterations (the paper uses 100 to 1000).
        alpha_init: initial step length (l2 length of the normalised gradient step).
        alpha_final: final step length after cosine annealing; default ``alpha_init / 100``.
        gamma_init, gamma_final: initial / final relative change of the ball radius.

    Shape: x (N, ...) in the model's bounds; y (N,); targets (N,) for targeted goals.

    Example::

        result = rbl.create_attack("fmn", steps=200)(model, x, y, "l2:10")  # large eps: min-norm
        result.sizes["l2"][result.success]  # the l2 norms (float64) of the successes
    """

    supports = frozenset(
        (n, g) for n in (Norm.LINF, Norm.L2) for g in (Goal.UNTARGETED, Goal.TARGETED)
    )
    quick_params = {"steps": 10}
    size_norms = ("l2", "linf")
    metric_names = ("found", "l2_mean", "l2_median", "linf_mean", "linf_median")
    steps: int = 100
    alpha_init: float = 1.0
    alpha_final: float | None = None
    gamma_init: float = 0.05
    gamma_final: float = 0.001

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ParameterError("steps", f"{self.steps} must be >= 1")
        if self.alpha_init <= 0:
            raise ParameterError("alpha_init", f"{self.alpha_init} must be > 0, e.g. 1.0")
        if self.alpha_final is not None and self.alpha_final <= 0:
            raise ParameterError("alpha_final", f"{self.alpha_final} must be > 0 (or None)")
        if not 0 < self.gamma_init < 1:
            raise ParameterError("gamma_init", f"{self.gamma_init} must lie in (0, 1), e.g. 0.05")
        if not 0 < self.gamma_final <= self.gamma_init:
            raise ParameterError(
                "gamma_final",
                f"{self.gamma_final} must lie in (0, gamma_init={self.gamma_init}], e.g. 0.001",
            )

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
        best_adv, _, found = self._minimise(model, x, y, target, threat.norm)
        metrics = {"found": float(found.float().mean()) if len(found) else 0.0}
        return AttackOutput(best_adv, metrics=metrics)

    def _minimise(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, norm: Norm
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (smallest adversarial points (x where none), their norms, found flags)."""
        lo, hi = model.bounds
        alpha_final = self.alpha_final if self.alpha_final is not None else self.alpha_init / 100
        dual = 1 if norm is Norm.LINF else 2
        n = len(y)
        delta = torch.zeros_like(x)
        eps = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
        worst = _norm(torch.maximum(x - lo, hi - x), norm)
        best_norm, best_adv = worst.clone(), x.clone()
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for i in range(self.steps):
            cosine = (1 + math.cos(math.pi * i / self.steps)) / 2
            alpha = alpha_final + (self.alpha_init - alpha_final) * cosine
            gamma = self.gamma_final + (self.gamma_init - self.gamma_final) * cosine
            d = delta.detach().requires_grad_(True)
            logits = model.differentiable(x + d)
            loss = margin(logits, y, t)
            (grad,) = torch.autograd.grad(loss.sum(), d)
            with torch.no_grad():
                if model.surrogate is not None and not model.randomized:  # else: EOT view
                    logits = model(x + d)
                is_adv = logits.argmax(dim=1) == t if t is not None else logits.argmax(dim=1) != y
                d_norm = _norm(delta, norm)
                better = is_adv & (d_norm < best_norm)
                found |= is_adv
                best_norm = torch.where(better, d_norm, best_norm)
                best_adv = torch.where(_rows(better, x), x + delta, best_adv)
                to_boundary = loss.abs() / grad.flatten(1).norm(p=dual, dim=1).clamp_min(1e-12)
                grow = torch.where(found, eps, d_norm + to_boundary) * (1 + gamma)
                eps = torch.where(is_adv, torch.minimum(eps * (1 - gamma), best_norm), grow)
                eps = torch.minimum(eps, worst)
                step = grad / _rows(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
                delta = _project(delta + alpha * step, eps, norm)
                delta = (x + delta).clamp(lo, hi) - x
        return best_adv, best_norm, found

"""FGSM / FGM: one gradient step of size eps (Goodfellow et al. 2015, arXiv 1412.6572)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.core.attack import Attack
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm, require_tensor

from ._losses import LOSSES
from ._steps import ascent_direction


@register_attack("fgsm")
@dataclass(frozen=True)
class FGSM(Attack):
    """Fast gradient sign method (linf) and fast gradient method (l2).

    Args:
        loss: ``ce`` (cross-entropy) or ``margin``; targeted goals descend toward the target.

    Shape: x (N, ...) in the model's bounds; y (N,).
    """

    supports = frozenset(
        (n, g) for n in (Norm.LINF, Norm.L2) for g in (Goal.UNTARGETED, Goal.TARGETED)
    )
    loss: str = "ce"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ParameterError("loss", f"{self.loss!r}: choose one of {', '.join(LOSSES)}")

    def run(
        self,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> Inputs:
        x = require_tensor(x, self.name)
        x_in = x.detach().clone().requires_grad_(True)
        loss = LOSSES[self.loss](model.differentiable(x_in), y, target).sum()
        (grad,) = torch.autograd.grad(loss, x_in)
        return (x + threat.eps * ascent_direction(grad, threat.norm)).detach()

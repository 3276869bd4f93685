"""Projected gradient descent (Madry et al. 2018, arXiv 1706.06083), linf and l2."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm, require_tensor

from ._losses import LOSSES
from ._steps import ascent_direction, random_start


@register_attack("pgd")
@dataclass(frozen=True)
class PGD(Attack):
    """PGD with random start and restarts; each restart attacks only the samples still robust.

    Args:
        steps: gradient steps per restart.
        restarts: independent runs; a sample broken by one is not attacked again.
        step_size: absolute step in input units; default ``2.5 * eps / steps`` (Madry).
        random_start: start at a uniform point of the ball instead of the clean input.
        loss: ``ce`` (cross-entropy), ``margin`` (CW) or ``dlr``.
        batch_size: samples per forward/backward pass.

    Shape: x (N, ...) in the model's bounds; y (N,); targets (N,) for targeted goals.

    Example::

        result = rbl.create_attack("pgd", steps=40)(model, x, y, "linf:0.1")
    """

    supports = frozenset(
        (n, g) for n in (Norm.LINF, Norm.L2) for g in (Goal.UNTARGETED, Goal.TARGETED)
    )
    quick_params = {"steps": 10}
    steps: int = 40
    restarts: int = 1
    step_size: float | None = None
    random_start: bool = True
    loss: str = "ce"
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ParameterError("loss", f"{self.loss!r}: choose one of {', '.join(LOSSES)}")
        for param, value in (
            ("steps", self.steps),
            ("restarts", self.restarts),
            ("batch_size", self.batch_size),
        ):
            if value < 1:
                raise ParameterError(param, f"{value} must be >= 1")
        if self.step_size is not None and self.step_size <= 0:
            raise ParameterError(
                "step_size", f"{self.step_size} must be > 0, or None for 2.5 * eps / steps"
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
        best = x.detach().clone()
        broken = torch.zeros(len(y), dtype=torch.bool, device=x.device)
        stalled = torch.zeros(len(y), dtype=torch.bool, device=x.device)
        for restart in range(self.restarts):
            todo = (~broken).nonzero()[:, 0]
            for chunk in todo.split(self.batch_size):
                t = target[chunk] if target is not None else None
                x_adv, no_gain = self._one_run(
                    model, x[chunk], y[chunk], t, threat, generator, restart
                )
                if restart == 0:
                    stalled[chunk] = no_gain
                if restart == self.restarts - 1:  # last run: no later restart needs the hits
                    best[chunk] = x_adv
                    continue
                with torch.no_grad():
                    hit = threat.is_success(model(x_adv), y[chunk], t)
                best[chunk] = torch.where(
                    _rows(hit, x_adv), x_adv, best[chunk] if restart else x_adv
                )
                broken[chunk] |= hit
            if broken.all():
                break
        return AttackOutput(best, metrics={"loss_not_increased": float(stalled.float().mean())})

    def _one_run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        threat: ThreatModel,
        generator: torch.Generator,
        restart: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One PGD run on a chunk; returns (x_adv, loss-did-not-increase flags)."""
        loss_fn = LOSSES[self.loss]
        net = model.differentiable
        step = self.step_size if self.step_size is not None else 2.5 * threat.eps / self.steps
        start = (
            random_start(x, threat.norm, threat.eps, generator)
            if (self.random_start or restart)
            else x
        )
        x_adv = threat.project(x, start, model.bounds)
        assert isinstance(x_adv, torch.Tensor)
        first_loss = None
        best_loss = torch.full((len(y),), float("-inf"), device=x.device)
        for _ in range(self.steps):
            x_adv = x_adv.detach().requires_grad_(True)
            losses = loss_fn(net(x_adv), y, target)
            (grad,) = torch.autograd.grad(losses.sum(), x_adv)
            if first_loss is None:
                first_loss = losses.detach()
            best_loss = torch.maximum(best_loss, losses.detach())
            moved = x_adv.detach() + step * ascent_direction(grad, threat.norm)
            projected = threat.project(x, moved, model.bounds)
            assert isinstance(projected, torch.Tensor)
            x_adv = projected
        assert first_loss is not None
        return x_adv.detach(), best_loss <= first_loss


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(-1, *([1] * (like.dim() - 1)))

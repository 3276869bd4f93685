"""Trainers: the loss of one batch, and what "validation accuracy" means for it.

* ``standard``: cross-entropy on the clean batch.
* ``gaussian``: cross-entropy on ``x + N(0, sigma^2 I)`` (Cohen, Rosenfeld & Kolter, ICML 2019,
  Sec. 3.3: the base classifier of a smoothed classifier is trained under the noise it will be
  smoothed with). As in the paper, the noisy input is not clipped to the input bounds.
* ``pgd-at``: Madry, Makelov, Schmidt, Tsipras & Vladu (ICLR 2018): cross-entropy on PGD
  examples (random start in the ball, ``steps`` signed-gradient (linf) or normalised-gradient
  (l2) steps of ``step_size``, projection onto the ball and the input bounds), made with the
  network in eval mode. Deviation: the step size defaults to ``2.5 * eps / steps`` (Madry et al.
  used 0.01 with eps 0.3 and 40 steps on MNIST, i.e. 1.33 eps/steps).
* ``trades``: Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan (ICML 2019), as in the authors' code:
  the inner maximisation starts at ``x + 0.001 N(0, I)`` and ascends
  ``KL(f(x) || f(x'))`` with signed steps inside the linf ball; the outer loss is
  ``CE(f(x), y) + beta * KL(f(x) || f(x')) / batch``. Only linf threats (the paper's).
  Deviation: the step size defaults to ``2.5 * eps / steps`` (the paper: 0.007 for eps 0.031
  and 10 steps on CIFAR-10, i.e. 2.26 eps/steps).

Validation accuracy (what the ``accelat`` schedule follows): the robust accuracy under the
trainer's own PGD at ``validation_steps`` steps for the adversarial trainers, the accuracy on
noisy inputs for ``gaussian``, the clean accuracy for ``standard``. It is computed under
``torch.random.fork_rng`` so that validating never changes the training's random stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lite.core.errors import ParameterError, ThreatSpecError
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.training.registry import register_trainer

__all__ = ["Trainer", "accuracy", "pgd_for_training"]

Bounds = tuple[float, float]


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on x (N, ...) and labels y (N,), in [0, 1]."""
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(dim=1) == y).float().mean())


def _l2_norms(t: torch.Tensor) -> torch.Tensor:
    """Per-sample l2 norms of ``t`` (N, ...) shaped (N, 1, ..., 1) for broadcasting."""
    flat = t.flatten(1).norm(dim=1).clamp_min(1e-12)
    return flat.view(-1, *([1] * (t.dim() - 1)))


def pgd_for_training(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    bounds: Bounds,
    norm: str = "linf",
    step_size: float | None = None,
) -> torch.Tensor:
    """Madry-style PGD with a random start (cross-entropy ascent), the network in eval mode.

    Args:
        net: the classifier (its train/eval mode is restored on return).
        x, y: the batch (N, ...) in ``bounds`` and its labels (N,).
        eps: the radius of the ball (``norm`` units of the input).
        steps: number of steps.
        bounds: (lo, hi) of the inputs.
        norm: ``linf`` (signed steps) or ``l2`` (normalised steps).
        step_size: the step; default ``2.5 * eps / steps``.

    Returns the adversarial batch, detached, inside the ball and the bounds.
    """
    step = 2.5 * eps / steps if step_size is None else step_size
    if norm == "linf":
        delta = (torch.rand_like(x) * 2 - 1) * eps
    else:
        noise = torch.randn_like(x)
        radius = torch.rand(len(x), *([1] * (x.dim() - 1)), dtype=x.dtype, device=x.device)
        radius = radius * eps
        delta = noise / _l2_norms(noise) * radius
    x_adv = (x + delta).clamp(*bounds)
    was_training = net.training
    net.eval()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(net(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        if norm == "linf":
            x_adv = x_adv.detach() + step * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(*bounds)
        else:
            x_adv = x_adv.detach() + step * grad / _l2_norms(grad)
            moved = x_adv - x
            moved = moved * torch.clamp(eps / _l2_norms(moved), max=1.0)
            x_adv = (x + moved).clamp(*bounds)
    net.train(was_training)
    return x_adv.detach()


@dataclass(frozen=True)
class Trainer:
    """What one training step minimises. Subclasses are frozen dataclasses whose fields are
    their parameters (checked by the registry, as for attacks)."""

    name: ClassVar[str] = ""

    def loss(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        """The scalar loss of batch (x, y); ``net`` is in train mode when called and returned."""
        raise NotImplementedError

    def defended_threat(self) -> str | None:
        """The threat this trainer defends (canonical spec), or None."""
        return None

    def validation_accuracy(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds, steps: int
    ) -> float:
        """The accuracy the ``accelat`` schedule follows (see the module docstring)."""
        return accuracy(net, x, y)


@register_trainer("standard")
@dataclass(frozen=True)
class Standard(Trainer):
    """Plain training: cross-entropy on the clean batch."""

    def loss(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        return F.cross_entropy(net(x), y)


@register_trainer("gaussian")
@dataclass(frozen=True)
class Gaussian(Trainer):
    """Gaussian noise augmentation (Cohen et al. 2019): cross-entropy on ``x + sigma * N(0, I)``.

    Args:
        sigma: standard deviation of the noise, in input units (> 0).
    """

    sigma: float = 0.25

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ParameterError("sigma", f"must be > 0, not {self.sigma!r}; e.g. sigma=0.25")

    def loss(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        return F.cross_entropy(net(x + self.sigma * torch.randn_like(x)), y)

    def validation_accuracy(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds, steps: int
    ) -> float:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return accuracy(net, x + self.sigma * torch.randn_like(x), y)


def _ball(threat: str, norms: tuple[str, ...], who: str) -> ThreatModel:
    try:
        parsed = ThreatModel.parse(threat)
    except ThreatSpecError as exc:
        raise ParameterError("threat", str(exc)) from None
    if parsed.norm.value not in norms or parsed.eps <= 0 or parsed.goal.value != "untargeted":
        raise ParameterError(
            "threat",
            f"{who} trains against an untargeted {' or '.join(norms)} ball with eps > 0, not "
            f"{threat!r}; e.g. threat: linf:0.1",
        )
    return parsed


def _steps_ok(steps: int, step_size: float | None) -> None:
    if steps < 1:
        raise ParameterError("steps", f"must be >= 1, not {steps!r}; e.g. steps: 10")
    if step_size is not None and not step_size > 0:
        raise ParameterError("step_size", f"must be > 0, not {step_size!r}; or leave it out")


class _Adversarial(Trainer):
    """Shared parts of the PGD-based trainers: the ball, and robust validation accuracy."""

    threat: str
    steps: int
    step_size: float | None

    def _model(self) -> ThreatModel:
        return ThreatModel.parse(self.threat)

    def defended_threat(self) -> str | None:
        return self._model().spec()

    def validation_accuracy(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds, steps: int
    ) -> float:
        ball = self._model()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            x_adv = pgd_for_training(
                net, x, y, eps=ball.eps, steps=steps, bounds=bounds, norm=ball.norm.value
            )
        return accuracy(net, x_adv, y)


@register_trainer("pgd-at")
@dataclass(frozen=True)
class PGDAT(_Adversarial):
    """PGD adversarial training (Madry et al. 2018): cross-entropy on PGD examples.

    Args:
        threat: the ball trained against, ``linf:EPS`` or ``l2:EPS``.
        steps: PGD steps per batch.
        step_size: PGD step (input units); default ``2.5 * eps / steps``.
    """

    threat: str = "linf:0.1"
    steps: int = 10
    step_size: float | None = None

    def __post_init__(self) -> None:
        _ball(self.threat, ("linf", "l2"), "pgd-at")
        _steps_ok(self.steps, self.step_size)

    def loss(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        ball = self._model()
        x_adv = pgd_for_training(
            net,
            x,
            y,
            eps=ball.eps,
            steps=self.steps,
            bounds=bounds,
            norm=ball.norm.value,
            step_size=self.step_size,
        )
        return F.cross_entropy(net(x_adv), y)


@register_trainer("trades")
@dataclass(frozen=True)
class TRADES(_Adversarial):
    """TRADES (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(f(x) || f(x'))``, x' the KL ascent.

    Args:
        threat: the linf ball of the inner maximisation, ``linf:EPS``.
        beta: weight of the robustness (KL) term; the paper's 6.0 by default.
        steps: ascent steps per batch.
        step_size: ascent step (input units); default ``2.5 * eps / steps``.
    """

    threat: str = "linf:0.1"
    beta: float = 6.0
    steps: int = 10
    step_size: float | None = None

    def __post_init__(self) -> None:
        _ball(self.threat, ("linf",), "trades")
        _steps_ok(self.steps, self.step_size)
        if not self.beta >= 0:
            raise ParameterError("beta", f"must be >= 0, not {self.beta!r}; e.g. beta: 6.0")

    def loss(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds
    ) -> torch.Tensor:
        eps = self._model().eps
        step = 2.5 * eps / self.steps if self.step_size is None else self.step_size
        kl_sum = nn.KLDivLoss(reduction="sum")
        net.eval()
        with torch.no_grad():
            p_clean = F.softmax(net(x), dim=1)
        x_adv = x.detach() + 0.001 * torch.randn_like(x)
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            loss_kl = kl_sum(F.log_softmax(net(x_adv), dim=1), p_clean)
            (grad,) = torch.autograd.grad(loss_kl, x_adv)
            x_adv = x_adv.detach() + step * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(*bounds)
        net.train()
        logits = net(x)
        robust = kl_sum(F.log_softmax(net(x_adv.detach()), dim=1), F.softmax(logits, dim=1))
        return F.cross_entropy(logits, y) + self.beta * robust / len(x)

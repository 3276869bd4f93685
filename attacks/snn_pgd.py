"""FGSM and PGD on spiking networks through a chosen surrogate gradient (incl. PDSG).

Lun et al., "Towards Effective and Sparse Adversarial Attack on Spiking Neural Networks via
Breaking Invisible Surrogate Gradients", CVPR 2025 (arXiv 2503.03272). The attacker does not
know the surrogate used in training; it builds a twin of the network whose LIF neurons use the
guessed surrogate (``pdsg``: the potential-dependent one of the paper; or ``atan``,
``sigmoid``, ``ste``) and runs standard FGSM / PGD with CE loss on the twin. Success is always
re-checked on the real (Heaviside) model by the base class.

Defaults follow the official code: FGSM one step ``eps * sign(g)``; PGD 10 steps of
``eps / 4`` with a uniform random start (l_inf). l2 works as in :mod:`pgd` (normalised steps).

Both report the surrogate (``surrogate``, ``surrogate_alpha``) and the real network's spikes per
sample on clean and adversarial inputs (``spikes_per_sample``, ``spikes_per_sample_adv``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm
from robustbench_lite.worlds.snn import SURROGATES, Surrogate, with_surrogate

from ._losses import LOSSES
from ._snn_metrics import snn_metrics
from .fgsm import FGSM
from .pgd import PGD

_SUPPORTS = frozenset(
    (n, g) for n in (Norm.LINF, Norm.L2) for g in (Goal.UNTARGETED, Goal.TARGETED)
)
_METRICS = ("surrogate_alpha", "spikes_per_sample", "spikes_per_sample_adv")


def _check(surrogate: str, alpha: float | None, loss: str) -> None:
    if surrogate not in SURROGATES:
        raise ParameterError("surrogate", f"{surrogate!r}: choose one of {', '.join(SURROGATES)}")
    Surrogate(surrogate, alpha)  # validates alpha
    if loss not in LOSSES:
        raise ParameterError("loss", f"{loss!r}: choose one of {', '.join(LOSSES)}")


@register_attack("snn_fgsm")
@dataclass(frozen=True)
class SNNFGSM(Attack):
    """FGSM on an SNN through the surrogate twin ``surrogate`` (arXiv 2503.03272).

    Args:
        surrogate: ``pdsg`` (default), ``atan``, ``sigmoid`` or ``ste``.
        alpha: width of ``atan`` (default 2) / ``sigmoid`` (default 4); larger is narrower.
        loss: ``ce`` (the paper) or ``margin``.

    Shape: x (N, ...) in the model's bounds (static images, direct encoding inside the net, or
    event frames (N, T, 2, H, W)); y (N,).

    Example::

        rbl.create_attack("snn_fgsm", surrogate="atan", alpha=10)(model, x, y, "linf:8/255")
    """

    supports = _SUPPORTS
    metric_names = _METRICS
    surrogate: str = "pdsg"
    alpha: float | None = None
    loss: str = "ce"

    def __post_init__(self) -> None:
        _check(self.surrogate, self.alpha, self.loss)

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
        spec = Surrogate(self.surrogate, self.alpha)
        twin = with_surrogate(model, spec)
        adv = FGSM(loss=self.loss).run(twin, x, y, threat, target=target, generator=generator)
        assert isinstance(x, torch.Tensor) and isinstance(adv, torch.Tensor)
        seen = threat.project(x, adv, model.bounds)  # what the base class re-checks
        assert isinstance(seen, torch.Tensor)
        return AttackOutput(adv, metrics=snn_metrics(model, spec, x, seen))


@register_attack("snn_pgd")
@dataclass(frozen=True)
class SNNPGD(Attack):
    """PGD on an SNN through the surrogate twin ``surrogate`` (arXiv 2503.03272).

    Args:
        surrogate: ``pdsg`` (default), ``atan``, ``sigmoid`` or ``ste``.
        alpha: width of ``atan`` (default 2) / ``sigmoid`` (default 4); larger is narrower.
        steps: PGD steps (paper: 10).
        rel_step: step size as a fraction of eps (paper: 1/4).
        random_start: uniform random start in the ball (paper: yes).
        restarts: independent runs; later runs attack only the samples still robust.
        loss: ``ce`` (the paper), ``margin`` or ``dlr``.

    Shape: as :class:`SNNFGSM`.
    """

    supports = _SUPPORTS
    quick_params = {"steps": 5}
    metric_names = _METRICS
    surrogate: str = "pdsg"
    alpha: float | None = None
    steps: int = 10
    rel_step: float = 0.25
    random_start: bool = True
    restarts: int = 1
    loss: str = "ce"

    def __post_init__(self) -> None:
        _check(self.surrogate, self.alpha, self.loss)
        for param, value in (("steps", self.steps), ("restarts", self.restarts)):
            if value < 1:
                raise ParameterError(param, f"{value} must be >= 1")
        if not self.rel_step > 0:
            raise ParameterError("rel_step", f"{self.rel_step} must be > 0, e.g. 0.25 (eps / 4)")

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
        spec = Surrogate(self.surrogate, self.alpha)
        twin = with_surrogate(model, spec)
        pgd = PGD(
            steps=self.steps,
            restarts=self.restarts,
            step_size=max(self.rel_step * threat.eps, 1e-12),
            random_start=self.random_start,
            loss=self.loss,
        )
        out = pgd.run(twin, x, y, threat, target=target, generator=generator)
        assert isinstance(x, torch.Tensor) and isinstance(out.x_adv, torch.Tensor)
        seen = threat.project(x, out.x_adv, model.bounds)  # what the base class re-checks
        assert isinstance(seen, torch.Tensor)
        metrics = {**out.metrics, **snn_metrics(model, spec, x, seen)}
        return AttackOutput(out.x_adv, queries=out.queries, metrics=metrics)

"""Selected foolbox 3 attacks in the registry: fb_cw_l2, fb_deepfool, fb_ead, fb_boundary.

foolbox is imported lazily, inside :func:`import_foolbox`, so that ``import robustbench_lite``
never loads it (nor eagerpy, GitPython, scipy). A missing or broken foolbox install disables
only these attacks: calling one raises :class:`FoolboxUnavailable` with the reason and the fix.

Each adapter wraps the model (gradients through ``model.differentiable``) as a
``foolbox.PyTorchModel`` with the model's bounds, calls the foolbox attack with the threat's
``eps`` and returns foolbox's clipped points; the base class re-checks success on the real model.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import FoolboxUnavailable, ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm, require_tensor


def import_foolbox() -> Any:
    """Import foolbox quietly (no GitPython refresh noise, no scipy DeprecationWarning)."""
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import foolbox
    except Exception as exc:  # ImportError, or a broken dependency raising anything else
        raise FoolboxUnavailable(
            f"foolbox could not be imported ({type(exc).__name__}: {exc}); the fb_* attacks are "
            "disabled; install it with: pip install 'foolbox>=3.3'"
        ) from None
    return foolbox


class _Net(nn.Module):
    """The model's differentiable view as a plain module (foolbox calls it on raw inputs)."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.differentiable(x)


@dataclass(frozen=True)
class _FoolboxAttack(Attack):
    """Base of the adapters: subclasses build the foolbox attack in :meth:`make`."""

    def make(self, fb: Any, threat: ThreatModel, num_classes: int) -> Any:
        raise NotImplementedError

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
        fb = import_foolbox()
        net = _Net(model).eval()
        fmodel = fb.PyTorchModel(net, bounds=tuple(float(b) for b in model.bounds), device=x.device)
        with torch.no_grad():
            num_classes = int(model(x[:1]).shape[1])
        if threat.goal is Goal.TARGETED:
            assert target is not None
            criterion = fb.criteria.TargetedMisclassification(target)
        else:
            criterion = fb.criteria.Misclassification(y)
        attack = self.make(fb, threat, num_classes)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            torch.manual_seed(seed)  # some foolbox attacks draw from the global generator
            warnings.simplefilter("ignore", DeprecationWarning)
            _, clipped, _ = attack(fmodel, x.detach(), criterion, epsilons=threat.eps)
        return AttackOutput(clipped.detach())


@register_attack("fb_cw_l2")
@dataclass(frozen=True)
class FoolboxCWL2(_FoolboxAttack):
    """Carlini & Wagner L2 (arXiv 1608.04644) through foolbox's ``L2CarliniWagnerAttack``.

    Args:
        steps: optimisation steps per binary-search step.
        binary_search_steps: searches over the trade-off constant.
        stepsize: Adam learning rate.
        confidence: required logit margin.
        initial_const: initial trade-off constant.
    """

    supports = frozenset({(Norm.L2, Goal.UNTARGETED), (Norm.L2, Goal.TARGETED)})
    quick_params = {"steps": 10, "binary_search_steps": 2}
    steps: int = 1000
    binary_search_steps: int = 9
    stepsize: float = 0.01
    confidence: float = 0.0
    initial_const: float = 0.001

    def make(self, fb: Any, threat: ThreatModel, num_classes: int) -> Any:
        return fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=self.binary_search_steps,
            steps=self.steps,
            stepsize=self.stepsize,
            confidence=self.confidence,
            initial_const=self.initial_const,
        )


@register_attack("fb_deepfool")
@dataclass(frozen=True)
class FoolboxDeepFool(_FoolboxAttack):
    """DeepFool (Moosavi-Dezfooli et al., arXiv 1511.04599), linf or l2, through foolbox.

    Args:
        steps: maximum iterations.
        candidates: number of most likely classes considered (capped at the class count).
        overshoot: relative overshoot past the linearised boundary.
    """

    supports = frozenset({(Norm.L2, Goal.UNTARGETED), (Norm.LINF, Goal.UNTARGETED)})
    quick_params = {"steps": 10, "candidates": 3}
    steps: int = 50
    candidates: int = 10
    overshoot: float = 0.02

    def make(self, fb: Any, threat: ThreatModel, num_classes: int) -> Any:
        cls = (
            fb.attacks.L2DeepFoolAttack if threat.norm is Norm.L2 else fb.attacks.LinfDeepFoolAttack
        )
        return cls(
            steps=self.steps, candidates=min(self.candidates, num_classes), overshoot=self.overshoot
        )


@register_attack("fb_ead")
@dataclass(frozen=True)
class FoolboxEAD(_FoolboxAttack):
    """Elastic-net attack EAD (Chen et al., arXiv 1709.04114), an l1 attack, through foolbox.

    Args:
        steps: optimisation steps per binary-search step.
        binary_search_steps: searches over the trade-off constant.
        initial_stepsize: initial step of the ISTA iterations.
        regularization: the l1 weight beta.
        decision_rule: ``EN`` or ``L1``: how the best adversarial point is chosen.
    """

    supports = frozenset({(Norm.L1, Goal.UNTARGETED), (Norm.L1, Goal.TARGETED)})
    quick_params = {"steps": 10, "binary_search_steps": 2}
    steps: int = 1000
    binary_search_steps: int = 9
    initial_stepsize: float = 0.01
    regularization: float = 0.01
    decision_rule: str = "EN"

    def __post_init__(self) -> None:
        if self.decision_rule not in ("EN", "L1"):
            raise ParameterError("decision_rule", f"{self.decision_rule!r}: choose EN or L1")

    def make(self, fb: Any, threat: ThreatModel, num_classes: int) -> Any:
        return fb.attacks.EADAttack(
            binary_search_steps=self.binary_search_steps,
            steps=self.steps,
            initial_stepsize=self.initial_stepsize,
            regularization=self.regularization,
            decision_rule=self.decision_rule,
        )


@register_attack("fb_boundary")
@dataclass(frozen=True)
class FoolboxBoundary(_FoolboxAttack):
    """Boundary attack (Brendel et al., arXiv 1712.04248): decision-based, l2, through foolbox.

    Untargeted only here (the targeted version needs starting points of the target class).

    Args:
        steps: random-walk steps along the boundary.
        spherical_step, source_step: initial relative step sizes.
    """

    supports = frozenset({(Norm.L2, Goal.UNTARGETED)})
    quick_params = {"steps": 20}
    steps: int = 2000
    spherical_step: float = 0.01
    source_step: float = 0.01

    def make(self, fb: Any, threat: ThreatModel, num_classes: int) -> Any:
        return fb.attacks.BoundaryAttack(
            steps=self.steps, spherical_step=self.spherical_step, source_step=self.source_step
        )

"""The Attack base class and its result.

Subclasses are frozen dataclasses of hyperparameters and implement :meth:`Attack.run`. The base
class owns :meth:`Attack.__call__`: it checks the threat is supported and its eps is within the
model's input range (``require_meaningful_eps``), draws targets, runs the
attack, projects the output into the threat set and re-checks success on the real model. An
attack never reports its own success.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, final

import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.core.model import Model
from robustbench_lite.core.threat import ThreatModel, require_meaningful_eps, require_supported
from robustbench_lite.core.types import Goal, Inputs, Norm, batch_size, require_tensor


@dataclass(frozen=True)
class AttackOutput:
    """What :meth:`Attack.run` may return instead of a bare tensor.

    Args:
        x_adv: candidate adversarial inputs, same shape as the clean inputs.
        queries: model queries spent per sample on average (black-box attacks).
        metrics: extra numbers to report (e.g. the fraction of samples whose loss did not
            increase, or which ensemble member broke each sample).
    """

    x_adv: Inputs
    queries: int | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttackResult:
    """The re-checked outcome of one attack on a batch.

    ``success[i]`` is True when ``x_adv[i]`` lies in the threat set around ``x[i]``, within the
    model's bounds, and meets the threat's goal on a fresh forward pass of the real model.
    """

    attack: str
    threat: str
    x_adv: Inputs
    success: torch.Tensor
    clean_correct: torch.Tensor
    elapsed_s: float
    queries: int | None = None
    target: torch.Tensor | None = None
    adv_pred: torch.Tensor | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def robust_accuracy(self) -> float:
        """Fraction of all samples that are clean-correct and not broken."""
        return robust_accuracy(self.clean_correct, self.success)

    @property
    def clean_accuracy(self) -> float:
        """Fraction of samples the model classifies correctly without attack."""
        return clean_accuracy(self.clean_correct)

    @property
    def success_rate(self) -> float:
        """Fraction of clean-correct samples that the attack broke."""
        return success_rate(self.clean_correct, self.success)


def clean_accuracy(clean_correct: torch.Tensor) -> float:
    """Fraction of samples classified correctly; ``clean_correct`` (N,) bool. NaN when N = 0."""
    n = clean_correct.numel()
    return float(clean_correct.sum()) / n if n else float("nan")


def robust_accuracy(clean_correct: torch.Tensor, success: torch.Tensor) -> float:
    """Fraction of all N samples that are clean-correct and not broken; (N,) bool each."""
    n = success.numel()
    return float((clean_correct & ~success).sum()) / n if n else float("nan")


def success_rate(clean_correct: torch.Tensor, success: torch.Tensor) -> float:
    """Fraction of the clean-correct samples that were broken; NaN when none is correct."""
    n = int(clean_correct.sum())
    return float((success & clean_correct).sum()) / n if n else float("nan")


class Attack(ABC):
    """Base class of all attacks: subclass as a frozen dataclass and implement ``run``.

    Example::

        @rbl.register_attack("my_attack")
        @dataclass(frozen=True)
        class MyAttack(rbl.Attack):
            supports = frozenset({(Norm.LINF, Goal.UNTARGETED)})
            steps: int = 50

            def run(self, model, x, y, threat, *, target, generator):
                ...  # return candidate adversarial inputs (N, ...)
    """

    name: ClassVar[str] = "attack"
    supports: ClassVar[frozenset[tuple[Norm, Goal]]] = frozenset()
    #: Parameters for a fast, weaker run (suites' ``--quick``, registry-generated tests).
    quick_params: ClassVar[Mapping[str, Any]] = {}
    #: True for attacks that take a mapping of modalities ({"camera": ..., "lidar": ...});
    #: every other attack is handed one tensor, and a mapping is refused before any model call.
    multimodal: ClassVar[bool] = False

    @final
    def __call__(
        self,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel | str,
        *,
        target: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> AttackResult:
        """Attack ``x`` (N, ...) with labels ``y`` (N,) under ``threat``; results re-checked.

        ``target`` is (N,) for targeted goals and (N, K) for top_k; when omitted, targets are
        drawn from ``generator`` (or ``seed``), never equal to the true label.
        """
        threat = ThreatModel.parse(threat)
        require_supported("attack", self.name, self.supports, threat)
        if not self.multimodal:
            require_tensor(x, self.name)
        require_meaningful_eps(threat, model.bounds, x)  # eps beyond the input range: exit 2
        n = batch_size(x)
        if y.shape != (n,):
            raise DataError(
                f"labels have shape {tuple(y.shape)}; expected ({n},) to match the inputs"
            )
        if generator is None:
            generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        clean_logits = model.logits(x)
        _check_labels(y, clean_logits.shape[1], model.name)
        if target is None:
            target = threat.sample_targets(y, clean_logits.shape[1], generator)
        out = self.run(model, x, y, threat, target=target, generator=generator)
        if not isinstance(out, AttackOutput):
            out = AttackOutput(out)
        candidate = _finite_or_clean(x, out.x_adv)
        # A patch attack places its own patch (there is no projection onto "some patch"); the
        # re-check below still enforces the area budget, the bounds and untouched modalities.
        x_adv = (
            candidate if threat.norm is Norm.PATCH else threat.project(x, candidate, model.bounds)
        )
        adv_logits = model.logits(x_adv)
        success = threat.contains(x, x_adv, model.bounds) & threat.is_success(adv_logits, y, target)
        return AttackResult(
            attack=self.name,
            threat=threat.name,
            x_adv=x_adv,
            success=success.cpu(),
            clean_correct=(clean_logits.argmax(dim=1) == y).cpu(),
            elapsed_s=time.perf_counter() - start,
            queries=out.queries,
            target=target,
            adv_pred=adv_logits.argmax(dim=1).cpu(),
            metrics=dict(out.metrics),
        )

    @abstractmethod
    def run(
        self,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> Inputs | AttackOutput:
        """Return candidate adversarial inputs (N, ...) for ``x``; the base class projects them."""


def _check_labels(y: torch.Tensor, num_classes: int, model_name: str) -> None:
    """Raise :class:`DataError` unless ``y`` holds integer class ids in ``[0, num_classes)``."""
    if y.is_floating_point() or y.dtype == torch.bool:
        raise DataError(f"labels have dtype {y.dtype}; pass integer class ids (torch.long)")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"labels span {int(y.min())}..{int(y.max())} but {model_name} has {num_classes} classes; "
            "pass labels in 0..num_classes-1 for this model"
        )


def _finite_or_clean(x: Inputs, x_adv: Inputs) -> Inputs:
    """``x_adv`` with NaN/inf entries reset to the clean input (a diverged attack fails there)."""
    if isinstance(x, torch.Tensor) and isinstance(x_adv, torch.Tensor) and x_adv.shape == x.shape:
        return torch.where(torch.isfinite(x_adv), x_adv, x)
    return x_adv

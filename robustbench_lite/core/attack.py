"""The Attack base class and its result.

Subclasses are frozen dataclasses of hyperparameters and implement :meth:`Attack.run`. The base
class owns :meth:`Attack.__call__`: it checks the threat is supported and its eps is within the
model's input range (``require_meaningful_eps``), draws targets, runs the
attack, projects the output into the threat set and re-checks success on the real model. An
attack never reports its own success.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, final

import torch

from robustbench_lite.core.errors import DataError, ParameterError
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
    A randomized model (:attr:`Model.randomized`) is judged over ``draws`` fresh passes: the
    goal (and, for ``clean_correct``, the true label) must hold in at least ``draw_fraction``
    of them, so one lucky draw never makes a sample robust or broken; ``adv_pred`` is then the
    most frequent prediction. Deterministic models: ``draws`` 1, ``draw_fraction`` None.
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
    #: Per-sample size of ``x_adv - x``, (N,) float64, in each norm of the attack's
    #: ``size_norms`` (``{"l0": ...}``), measured by the base class on the re-checked inputs.
    sizes: Mapping[str, torch.Tensor] = field(default_factory=dict)
    draws: int = 1
    draw_fraction: float | None = None

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
    #: Norms (``l0``, ``l1``, ``l2``, ``linf``) in which the base class measures each sample's
    #: perturbation (``AttackResult.sizes``); reports average them over successes only.
    size_norms: ClassVar[tuple[str, ...]] = ()

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
        if not model.randomized:
            return self._attack(model, x, y, threat, target, generator)
        with seeded_draws(model, generator):
            return self._attack(model, x, y, threat, target, generator)

    def _attack(
        self,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> AttackResult:
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
        metrics = dict(out.metrics)
        if model.randomized:
            clean_correct, _ = judge(model, x, lambda z: z.argmax(dim=1) == y, first=clean_logits)
            goal, adv_pred = judge(model, x_adv, lambda z: threat.is_success(z, y, target))
            metrics["judging"] = judging_text(model)
        else:
            adv_logits = model.logits(x_adv)
            goal, adv_pred = threat.is_success(adv_logits, y, target), adv_logits.argmax(dim=1)
            clean_correct = clean_logits.argmax(dim=1) == y
        success = threat.contains(x, x_adv, model.bounds) & goal
        return AttackResult(
            attack=self.name,
            threat=threat.name,
            x_adv=x_adv,
            success=success.cpu(),
            clean_correct=clean_correct.cpu(),
            elapsed_s=time.perf_counter() - start,
            queries=out.queries,
            target=target,
            adv_pred=adv_pred.cpu(),
            metrics=metrics,
            sizes=perturbation_sizes(x, x_adv, self.size_norms),
            draws=model.draws if model.randomized else 1,
            draw_fraction=model.draw_fraction if model.randomized else None,
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


def perturbation_sizes(x: Inputs, x_adv: Inputs, norms: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Per-sample size (N,) float64 of ``x_adv - x`` (N, ...) in each of ``norms`` (``l0`` counts
    changed entries); empty for mapping inputs."""
    if not norms or not isinstance(x, torch.Tensor) or not isinstance(x_adv, torch.Tensor):
        return {}
    delta = (x_adv.detach() - x.detach()).flatten(1).double().cpu()
    out: dict[str, torch.Tensor] = {}
    for norm in norms:
        if norm == "l0":
            out[norm] = (delta != 0).sum(dim=1).double()
        elif norm == "l1":
            out[norm] = delta.abs().sum(dim=1)
        elif norm == "l2":
            out[norm] = delta.norm(dim=1)
        elif norm == "linf":
            out[norm] = delta.abs().amax(dim=1) if delta.shape[1] else delta.new_zeros(len(delta))
        else:
            raise ParameterError("size_norms", f"{norm!r}: choose l0, l1, l2 or linf")
    return out


def judge(
    model: Model,
    x: Inputs,
    holds: Callable[[torch.Tensor], torch.Tensor],
    *,
    first: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether ``holds(logits)`` (N,) bool is true in at least ``model.draw_fraction`` of
    ``model.draws`` fresh forward passes, and the most frequent prediction (N,).

    ``first`` may hold the logits of one pass already taken (it counts as the first draw).
    A deterministic model gets one pass.
    """
    draws = model.draws if model.randomized else 1
    count: torch.Tensor | None = None
    votes: torch.Tensor | None = None
    for i in range(draws):
        logits = first if (i == 0 and first is not None) else model.logits(x)
        hit = holds(logits).long()
        onehot = torch.nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1])
        count = hit if count is None else count + hit
        votes = onehot if votes is None else votes + onehot
    assert count is not None and votes is not None
    # at least ``fraction`` of the draws; the small slack keeps e.g. 0.3 * 10 at 3 draws
    needed = math.ceil(model.draw_fraction * draws - 1e-9) if model.randomized else 1
    return count >= needed, votes.argmax(dim=1)


@contextmanager
def seeded_draws(model: Model, generator: torch.Generator) -> Iterator[None]:
    """Seed torch's global stream (which random defenses draw from) from ``generator``, inside
    a fork: runs are reproducible and the caller's global stream is left untouched."""
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        yield


def judged_clean(
    model: Model, x: Inputs, y: torch.Tensor, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean correctness (N,) bool and predictions (N,) of ``x``; a randomized model is judged
    over its draws (:func:`judge`, seeded by ``seed``), any other on one pass."""
    y = y.cpu()
    if not model.randomized:
        pred = model.logits(x).argmax(dim=1).cpu()
        return pred == y, pred
    with seeded_draws(model, torch.Generator().manual_seed(seed)):
        correct, pred = judge(model, x, lambda z: z.argmax(dim=1).cpu() == y)
        return correct, pred.cpu()


def judging_text(model: Model) -> str:
    """The judging rule of a randomized model in words, for results and reports."""
    needed = math.ceil(model.draw_fraction * model.draws - 1e-9)
    random = ", ".join(d.name for d in model.defenses if d.random) or "its network"
    return (
        f"randomized model ({random}): clean correctness and attack success each counted only "
        f"when they hold in at least {needed} of {model.draws} forward passes "
        f"(draw_fraction {model.draw_fraction:g})"
    )


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

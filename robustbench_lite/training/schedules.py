"""Learning-rate schedules: ``fixed``, ``one-cycle`` and ``accelat``.

A schedule is a frozen dataclass (its parameters); :meth:`Schedule.start` gives the stateful
:class:`Controller` that one training run calls after every batch and every epoch.

* ``fixed``: the optimiser's learning rate throughout.
* ``one-cycle``: Smith & Topin (2019) through ``torch.optim.lr_scheduler.OneCycleLR`` (cosine
  warm-up to the recipe's lr over ``pct_start`` of the steps, then cosine annealing), stepped
  per batch; the zoo's schedule.
* ``accelat``: Nikfam, Marchisio, Martina & Shafique, "AccelAT: A Framework for Accelerating the
  Adversarial Training of Deep Neural Networks through Accuracy Gradient" (IEEE Access 10,
  2022). After every epoch the validation accuracy is appended to a list and its moving mean
  over the last ``window`` epochs is taken; the *accuracy gradient* is that mean minus the
  previous epoch's mean. When more than ``window`` means are known, at least ``cooldown``
  epochs have passed since the last change (the "quiet time"), and the gradient is below
  ``threshold``, the learning rate is multiplied by ``factor``; it never goes below
  ``min_lr``. The new rate applies from the next epoch. Defaults are the authors' (window 5,
  cooldown 5, threshold 0.005, factor 0.8, min_lr 1e-6; their code, ``function_callback.py``,
  is the reference for the exact order of these tests). The recipe's initial learning rate is
  the schedule's starting point; the authors start AccelAT 10x above the constant schedule
  they compare with (1e-3 against 1e-4). Deviations: the validation accuracy followed here is
  the trainer's (robust accuracy under fresh PGD on a held-out validation split, see
  :mod:`~robustbench_lite.training.objectives`), where the authors used adversarial examples
  of the test set generated once before training; and the schedule works with any optimiser
  (the authors used plain SGD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from robustbench_lite.core.errors import ParameterError
from robustbench_lite.training.registry import register_schedule

__all__ = ["AccelATRule", "Controller", "Schedule"]


class Controller:
    """One run's learning-rate state; the loop calls :meth:`after_batch` and :meth:`after_epoch`."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    @property
    def lr(self) -> float:
        """The learning rate the next step uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    def after_batch(self) -> None:
        """Called after each optimiser step."""

    def after_epoch(self, accuracy: float | None) -> None:
        """Called after each epoch with its validation accuracy (None when not validated)."""


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule's parameters; ``needs_validation``: it reads the validation
    accuracy of every epoch."""

    name: ClassVar[str] = ""
    needs_validation: ClassVar[bool] = False

    def start(
        self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
    ) -> Controller:
        """The controller of one run (``optimizer`` was built with the recipe's lr)."""
        return Controller(optimizer)


@register_schedule("fixed")
@dataclass(frozen=True)
class Fixed(Schedule):
    """The optimiser's learning rate, unchanged."""


class _OneCycle(Controller):
    def __init__(self, optimizer: torch.optim.Optimizer, scheduler: object) -> None:
        super().__init__(optimizer)
        self.scheduler = scheduler

    def after_batch(self) -> None:
        self.scheduler.step()  # type: ignore[attr-defined]


@register_schedule("one-cycle")
@dataclass(frozen=True)
class OneCycle(Schedule):
    """One-cycle policy (Smith & Topin 2019), ``torch.optim.lr_scheduler.OneCycleLR`` per batch;
    the recipe's lr is the peak.

    Args:
        pct_start: fraction of the steps spent warming up.
        div_factor: the starting rate is the peak / ``div_factor``.
        final_div_factor: the final rate is the starting rate / ``final_div_factor``.
    """

    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def __post_init__(self) -> None:
        if not 0 < self.pct_start < 1:
            raise ParameterError("pct_start", f"must be in (0, 1), not {self.pct_start!r}")
        for key in ("div_factor", "final_div_factor"):
            if not getattr(self, key) > 0:
                raise ParameterError(key, f"must be > 0, not {getattr(self, key)!r}")

    def start(
        self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
    ) -> Controller:
        max_lr = float(optimizer.param_groups[0]["lr"])
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lr,
            total_steps=epochs * steps_per_epoch,
            pct_start=self.pct_start,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
        )
        return _OneCycle(optimizer, scheduler)


@dataclass
class AccelATRule:
    """The AccelAT decision, without an optimiser: feed it one validation accuracy per epoch.

    Args:
        lr: the current learning rate (updated in place by :meth:`update`).
        window, cooldown, threshold, factor, min_lr: as :class:`AccelAT`.
    """

    lr: float
    window: int = 5
    cooldown: int = 5
    threshold: float = 0.005
    factor: float = 0.8
    min_lr: float = 1e-6
    accuracies: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    #: 0-based epochs after which the rate was lowered.
    decays: list[int] = field(default_factory=list)
    quiet: int = -1

    def __post_init__(self) -> None:
        if self.quiet < 0:
            self.quiet = self.cooldown  # the authors start the quiet counter at the cooldown

    def update(self, accuracy: float) -> float:
        """Record one epoch's validation accuracy; returns the learning rate for the next."""
        self.accuracies.append(float(accuracy))
        recent = self.accuracies[-self.window :]
        mean = sum(recent) / len(recent)
        self.quiet += 1
        if (
            len(self.means) > self.window
            and self.quiet > self.cooldown
            and mean - self.means[-1] < self.threshold
        ):
            self.lr *= self.factor
            self.quiet = 1
            self.decays.append(len(self.accuracies) - 1)
        self.lr = max(self.lr, self.min_lr)
        self.means.append(mean)
        return self.lr

    @property
    def gradients(self) -> list[float]:
        """The accuracy gradient of every epoch after the first (mean minus previous mean)."""
        return [b - a for a, b in zip(self.means, self.means[1:])]


class _AccelAT(Controller):
    def __init__(self, optimizer: torch.optim.Optimizer, rule: AccelATRule) -> None:
        super().__init__(optimizer)
        self.rule = rule

    def after_epoch(self, accuracy: float | None) -> None:
        if accuracy is None:
            raise ValueError("the accelat schedule needs a validation accuracy every epoch")
        lr = self.rule.update(accuracy)
        for group in self.optimizer.param_groups:
            group["lr"] = lr


@register_schedule("accelat")
@dataclass(frozen=True)
class AccelAT(Schedule):
    """AccelAT (Nikfam et al. 2022): lower the rate when the validation accuracy stops rising.

    Args:
        window: epochs in the moving mean of validation accuracy.
        cooldown: epochs after a change before the next one may happen (the quiet time).
        threshold: the rate is lowered when the mean rose by less than this in one epoch.
        factor: multiplier of the rate at each lowering, in (0, 1).
        min_lr: the rate never goes below this.
    """

    needs_validation: ClassVar[bool] = True

    window: int = 5
    cooldown: int = 5
    threshold: float = 0.005
    factor: float = 0.8
    min_lr: float = 1e-6

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ParameterError("window", f"must be >= 1, not {self.window!r}; e.g. window: 5")
        if self.cooldown < 0:
            raise ParameterError("cooldown", f"must be >= 0, not {self.cooldown!r}")
        if not 0 < self.factor < 1:
            raise ParameterError("factor", f"must be in (0, 1), not {self.factor!r}; e.g. 0.8")
        if not self.min_lr >= 0:
            raise ParameterError("min_lr", f"must be >= 0, not {self.min_lr!r}")

    def rule(self, lr: float) -> AccelATRule:
        """A fresh decision rule starting at ``lr``."""
        return AccelATRule(
            lr,
            window=self.window,
            cooldown=self.cooldown,
            threshold=self.threshold,
            factor=self.factor,
            min_lr=self.min_lr,
        )

    def start(
        self, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
    ) -> Controller:
        return _AccelAT(optimizer, self.rule(float(optimizer.param_groups[0]["lr"])))

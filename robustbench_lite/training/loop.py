"""The one training loop: minibatches of a trainer's loss, an optimiser and a schedule.

Randomness (shuffling, PGD starts, noise) comes from the global generator, which callers seed
(the zoo inside ``torch.random.fork_rng``); validation runs under its own fork, so a schedule
that validates sees the same batches and PGD starts as one that does not, until its learning
rate differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from robustbench_lite.core.errors import ParameterError
from robustbench_lite.training.objectives import PGDAT, Standard, Trainer, accuracy
from robustbench_lite.training.schedules import OneCycle, Schedule

__all__ = ["EpochRecord", "OptimizerSpec", "accuracy", "fit", "train_classifier"]

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimiser of a recipe.

    Args:
        name: ``adam`` or ``sgd``.
        lr: the learning rate (the peak for ``one-cycle``, the start for ``accelat``).
        weight_decay: L2 penalty (both optimisers' ``weight_decay``).
        momentum: SGD momentum (``sgd`` only).
    """

    name: str = "adam"
    lr: float = 0.01
    weight_decay: float = 0.0
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ParameterError("name", f"unknown optimizer {self.name!r}; choose adam or sgd")
        if not self.lr > 0:
            raise ParameterError("lr", f"must be > 0, not {self.lr!r}; e.g. lr: 0.01")
        if not self.weight_decay >= 0:
            raise ParameterError("weight_decay", f"must be >= 0, not {self.weight_decay!r}")
        if not 0 <= self.momentum < 1:
            raise ParameterError("momentum", f"must be in [0, 1), not {self.momentum!r}")
        if self.name == "adam" and self.momentum:
            raise ParameterError("momentum", "adam takes no momentum; drop it or use sgd")

    def build(self, params: object) -> torch.optim.Optimizer:
        """The torch optimiser over ``params``."""
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)  # type: ignore[arg-type]
        return torch.optim.SGD(
            params,  # type: ignore[arg-type]
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did.

    Args:
        epoch: 1-based epoch number.
        loss: mean training loss over its batches.
        lr: learning rate at the start of the epoch.
        next_lr: learning rate the next epoch starts with.
        val_accuracy: the trainer's validation accuracy after the epoch, or None.
        train_s: wall seconds of the epoch's batches.
        val_s: wall seconds of its validation (0 when none).
    """

    epoch: int
    loss: float
    lr: float
    next_lr: float
    val_accuracy: float | None
    train_s: float
    val_s: float


def fit(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    trainer: Trainer,
    schedule: Schedule,
    optimizer: OptimizerSpec,
    epochs: int,
    batch_size: int,
    bounds: tuple[float, float] = (0.0, 1.0),
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    validation_steps: int = 10,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> list[EpochRecord]:
    """Train ``net`` in place; returns one record per epoch and leaves ``net`` in eval mode.

    Args:
        net: the classifier, logits (N, classes).
        x, y: training inputs (N, ...) within ``bounds`` and labels (N,).
        trainer: the batch loss (``create_trainer``).
        schedule: the learning-rate schedule (``create_schedule``).
        optimizer: the optimiser and its learning rate.
        epochs, batch_size: passes over (x, y) and samples per step (last batch smaller).
        bounds: (lo, hi) of the inputs, for the adversarial trainers.
        validation: held-out (x, y) scored after every epoch with the trainer's
            ``validation_accuracy``; required by schedules that need it (``accelat``).
        validation_steps: PGD steps of that score for the adversarial trainers.
        on_epoch: called with each :class:`EpochRecord` (a progress bar, a benchmark's probe).
    """
    if schedule.needs_validation and validation is None:
        raise ParameterError(
            "validation", f"the {schedule.name} schedule follows validation accuracy; give data"
        )
    opt = optimizer.build(net.parameters())
    steps_per_epoch = (len(y) + batch_size - 1) // batch_size
    control = schedule.start(opt, epochs=epochs, steps_per_epoch=steps_per_epoch)
    records: list[EpochRecord] = []
    for epoch in range(1, epochs + 1):
        start, lr, total = time.perf_counter(), control.lr, 0.0
        net.train()
        order = torch.randperm(len(y))
        for first in range(0, len(y), batch_size):
            idx = order[first : first + batch_size]
            loss = trainer.loss(net, x[idx], y[idx], bounds)
            opt.zero_grad()
            loss.backward()
            opt.step()
            control.after_batch()
            total += float(loss.detach())
        train_s = time.perf_counter() - start
        val_acc = None
        if validation is not None:
            with torch.random.fork_rng():
                val_acc = trainer.validation_accuracy(
                    net, validation[0], validation[1], bounds, validation_steps
                )
        control.after_epoch(val_acc)
        record = EpochRecord(
            epoch,
            total / steps_per_epoch,
            lr,
            control.lr,
            val_acc,
            train_s,
            time.perf_counter() - start - train_s,
        )
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)
    net.eval()
    return records


def train_classifier(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    adv_eps: float = 0.0,
    adv_steps: int = 10,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> None:
    """The zoo's classic recipe through :func:`fit`: Adam, the one-cycle schedule, and PGD-AT
    at linf ``adv_eps`` with ``adv_steps`` steps when ``adv_eps > 0`` (else standard)."""
    trainer: Trainer = (
        PGDAT(threat=f"linf:{adv_eps!r}", steps=adv_steps) if adv_eps > 0 else Standard()
    )
    fit(
        net,
        x,
        y,
        trainer=trainer,
        schedule=OneCycle(),
        optimizer=OptimizerSpec("adam", lr, weight_decay),
        epochs=epochs,
        batch_size=batch_size,
        bounds=bounds,
    )

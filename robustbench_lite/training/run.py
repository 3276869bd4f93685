"""Train a :class:`~robustbench_lite.training.recipe.Recipe` and write its checkpoint.

:func:`train_recipe` loads the recipe's data (training split, minus a seeded validation share
when the recipe holds one out), trains the given untrained network with :func:`fit`, and scores
it on the test split: clean accuracy, and for the adversarial trainers the robust accuracy
under PGD-20 (random start, step ``2.5 eps / 20``) at the trainer's threat.

:func:`checkpoint_bytes` gives the file ``robustbench-lite train`` writes, a state_dict with its
metadata (see :mod:`robustbench_lite.models.meta`)::

    {"state_dict": {...},
     "rbl_meta": {"bounds": [0, 1], "input_shape": [1, 8, 8], "num_classes": 10,
                  "default_threats": ["linf:0.1", "l2:1"], "dataset": "digits",
                  "training": {"arch": ..., "recipe_hash": ..., "trainer": "pgd-at",
                               "threat": "linf:0.1", "schedule": "accelat", "recipe": {...},
                               "metrics": {...}, "robustbench_lite": "0.1.0"}}}

so ``robustbench-lite evaluate model.pt --arch MODULE:ATTR`` (and ``attack``, ``verify``,
``run --model``) knows its bounds, shape, data and default threats without flags.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.errors import RecipeError
from robustbench_lite.core.version import __version__
from robustbench_lite.training.loop import EpochRecord, fit
from robustbench_lite.training.objectives import accuracy, pgd_for_training
from robustbench_lite.training.recipe import Recipe

__all__ = ["TrainResult", "checkpoint_bytes", "load_recipe_data", "train_recipe"]

#: PGD steps of the robust accuracy recorded after training.
EVAL_STEPS = 20


@dataclass(frozen=True)
class RecipeData:
    """A recipe's samples: training (N, ...), validation (or None), test; and the domain."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    validation: tuple[torch.Tensor, torch.Tensor] | None
    x_test: torch.Tensor
    y_test: torch.Tensor
    bounds: tuple[float, float] | None
    default_threats: tuple[str, ...]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_recipe` did: per-epoch records, test metrics, the checkpoint metadata."""

    records: list[EpochRecord]
    metrics: dict[str, Any]
    rbl_meta: dict[str, Any] = field(default_factory=dict)


def load_recipe_data(recipe: Recipe) -> RecipeData:
    """The recipe's training, validation and test samples and its data's domain."""
    from robustbench_lite.datasets import dataset_domain, load_data

    options = dict(recipe.data_options)
    x, y = load_data(recipe.data, split="train", **options)
    x_te, y_te = load_data(recipe.data, split="test", **options)
    domain = dataset_domain(recipe.data)
    if domain is not None and domain.mean is not None:
        raise RecipeError(
            f"{recipe.source} data: {recipe.data} declares a normalization, which training "
            "does not apply yet; train on a dataset whose models take raw values"
        )
    validation = None
    if recipe.validation_fraction > 0:
        n_val = max(1, round(len(y) * recipe.validation_fraction))
        gen = torch.Generator().manual_seed(recipe.seed)
        order = torch.randperm(len(y), generator=gen)
        val, keep = order[:n_val], order[n_val:]
        validation = (x[val], y[val])
        x, y = x[keep], y[keep]
    return RecipeData(
        x,
        y,
        validation,
        x_te,
        y_te,
        None if domain is None else domain.bounds,
        () if domain is None else tuple(domain.default_threats),
    )


def train_recipe(
    recipe: Recipe,
    net: nn.Module,
    *,
    data: RecipeData | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train ``net`` (built and seeded by the caller) by ``recipe``; score it on the test split.

    The caller seeds the global generator with ``recipe.seed`` before building ``net`` (the CLI
    and the zoo do), so the same recipe gives the same weights.
    """
    data = data if data is not None else load_recipe_data(recipe)
    trainer, schedule = recipe.build_trainer(), recipe.build_schedule()
    threat = trainer.defended_threat()
    if threat is not None and data.bounds is None:
        raise RecipeError(
            f"{recipe.source} trainer: {recipe.trainer} needs input bounds, and {recipe.data} "
            "declares none"
        )
    bounds = data.bounds or (0.0, 1.0)
    start = time.perf_counter()
    records = fit(
        net,
        data.x_train,
        data.y_train,
        trainer=trainer,
        schedule=schedule,
        optimizer=recipe.optimizer,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        bounds=bounds,
        validation=data.validation,
        validation_steps=recipe.validation_steps,
        on_epoch=on_epoch,
    )
    metrics: dict[str, Any] = {
        "train_time_s": round(time.perf_counter() - start, 2),
        "clean_accuracy": accuracy(net, data.x_test, data.y_test),
        "final_lr": records[-1].next_lr if records else recipe.optimizer.lr,
    }
    if threat is not None:
        from robustbench_lite.core.threat import ThreatModel

        ball = ThreatModel.parse(threat)
        with torch.random.fork_rng():
            torch.manual_seed(recipe.seed)
            x_adv = pgd_for_training(
                net,
                data.x_test,
                data.y_test,
                eps=ball.eps,
                steps=EVAL_STEPS,
                bounds=bounds,
                norm=ball.norm.value,
            )
        metrics["pgd20_accuracy"] = accuracy(net, x_adv, data.y_test)
    if records and records[-1].val_accuracy is not None:
        metrics["val_accuracy"] = records[-1].val_accuracy
    return TrainResult(records, metrics, _meta(recipe, data, threat, metrics))


def _meta(
    recipe: Recipe, data: RecipeData, threat: str | None, metrics: dict[str, Any]
) -> dict[str, Any]:
    threats = [threat] if threat is not None else []
    threats += [t for t in data.default_threats if t not in threats]
    meta: dict[str, Any] = {
        "input_shape": list(data.x_train.shape[1:]),
        "num_classes": int(max(int(data.y_train.max()), int(data.y_test.max())) + 1),
        "dataset": (
            {"name": recipe.data, "options": dict(recipe.data_options)}
            if recipe.data_options
            else recipe.data
        ),
        "training": {
            "arch": recipe.arch,
            "recipe_hash": recipe.hash,
            "recipe": recipe.canonical(),
            "trainer": recipe.trainer,
            "threat": threat,
            "schedule": recipe.schedule,
            "metrics": {k: round(float(v), 6) for k, v in metrics.items()},
            "robustbench_lite": __version__,
        },
    }
    if data.bounds is not None:
        meta["bounds"] = [float(data.bounds[0]), float(data.bounds[1])]
    if threats:
        meta["default_threats"] = threats
    return meta


def checkpoint_bytes(net: nn.Module, result: TrainResult) -> bytes:
    """``torch.save`` bytes of ``{"state_dict": ..., "rbl_meta": ...}`` (loads with
    ``torch.load(weights_only=True)``)."""
    buffer = io.BytesIO()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "rbl_meta": result.rbl_meta}, buffer)
    return buffer.getvalue()

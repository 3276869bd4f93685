"""Zoo models on scikit-learn's 8x8 digits: an MLP (for the verifier), a CNN and a PGD-trained CNN.

``digits-cnn-at`` is a training recipe (:mod:`robustbench_lite.training.recipe`), trained by
the same code as ``robustbench-lite train examples/recipes/digits-cnn-pgd-at.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from robustbench_lite.training.loop import accuracy, train_classifier
from robustbench_lite.zoo import ZooEntry, register_zoo_model

__all__: list[str] = []

DIGITS_MODEL = {
    "bounds": (0.0, 1.0),
    "input_shape": (1, 8, 8),
    "num_classes": 10,
    "default_threats": ("linf:0.1", "l2:1"),
}


def digits_mlp() -> nn.Sequential:
    """64-32-32-10 fully connected ReLU network (small enough for complete verification)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)
    )


def digits_cnn() -> nn.Sequential:
    """Two 3x3 convolutions (the second with stride 2), then a 64-unit dense layer; no pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def _trainer(recipe: Mapping[str, Any]) -> Any:
    def train(net: nn.Module) -> dict[str, float]:
        with _one_thread():
            return _train(net)

    def _train(net: nn.Module) -> dict[str, float]:
        from robustbench_lite.datasets import load_data

        x_tr, y_tr = load_data("digits", split="train")
        x_te, y_te = load_data("digits", split="test")
        train_classifier(
            net,
            x_tr,
            y_tr,
            epochs=recipe["epochs"],
            lr=recipe["lr"],
            batch_size=recipe["batch_size"],
        )
        return {
            "clean_accuracy": accuracy(net, x_te, y_te),
            "train_accuracy": accuracy(net, x_tr, y_tr),
        }

    return train


def _recipe_trainer(recipe: Mapping[str, Any]) -> Any:
    """Train by a training recipe (the ``robustbench-lite train`` path)."""

    def train(net: nn.Module) -> dict[str, float]:
        from robustbench_lite.training.recipe import parse_recipe
        from robustbench_lite.training.run import load_recipe_data, train_recipe

        parsed = parse_recipe(dict(recipe), "zoo recipe")
        with _one_thread():
            data = load_recipe_data(parsed)
            result = train_recipe(parsed, net, data=data)
            return {
                **result.metrics,
                "train_accuracy": accuracy(net, data.x_train, data.y_train),
            }

    return train


@contextmanager
def _one_thread() -> Iterator[None]:
    """Train these tiny nets on one thread: as fast, and immune to thread oversubscription
    (on a busy 2-core machine two spinning OpenMP threads made digits-mlp ~6x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _entry(name: str, description: str, build: Any, **recipe: Any) -> None:
    recipe = {"arch": build.__name__, "data": "digits", "seed": 0, **recipe}
    register_zoo_model(
        ZooEntry(name, description, build, _trainer(recipe), recipe, DIGITS_MODEL, data="digits")
    )


_entry(
    "digits-mlp",
    "64-32-32-10 ReLU MLP on 8x8 digits",
    digits_mlp,
    epochs=40,
    lr=1e-2,
    batch_size=64,
)
_entry("digits-cnn", "2-conv CNN on 8x8 digits", digits_cnn, epochs=30, lr=1e-2, batch_size=64)
#: The recipe of ``zoo:digits-cnn-at``: ``examples/recipes/digits-cnn-pgd-at.yaml`` holds the same.
DIGITS_CNN_AT_RECIPE: dict[str, Any] = {
    "arch": "robustbench_lite.zoo.digits:digits_cnn",
    "data": "digits",
    "seed": 0,
    "epochs": 30,
    "batch_size": 64,
    "optimizer": {"name": "adam", "lr": 0.01},
    "schedule": "one-cycle",
    "trainer": {"name": "pgd-at", "threat": "linf:0.1", "steps": 10},
}


def _recipe_entry(name: str, description: str, build: Any, recipe: Mapping[str, Any]) -> None:
    from robustbench_lite.training.recipe import parse_recipe

    canonical = parse_recipe(dict(recipe), f"zoo:{name} recipe").canonical()
    register_zoo_model(
        ZooEntry(
            name,
            description,
            build,
            _recipe_trainer(canonical),
            canonical,
            DIGITS_MODEL,
            data="digits",
        )
    )


_recipe_entry(
    "digits-cnn-at",
    "2-conv CNN on 8x8 digits, PGD-10 adversarial training at linf 0.1",
    digits_cnn,
    DIGITS_CNN_AT_RECIPE,
)

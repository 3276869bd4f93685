"""Spiking zoo models (LIF, tau 2, hard reset), trained with the ATan(alpha=2) surrogate.

The deployed models fire with the Heaviside step (input gradient zero); the surrogate used in
training is "invisible" to an attacker (Lun et al., CVPR 2025). Each is loaded with a PDSG
surrogate twin in :attr:`Model.surrogate` (PDSG needs no knowledge of the training surrogate),
so generic gradient attacks (``pgd``, ``evaluate``) attack through it; ``snn_fgsm``,
``snn_pgd`` and ``sda`` build the twin for the surrogate they are given.

* ``digits-snn``: 8x8 digits, direct encoding (the image repeated over T = 4 steps),
  conv16-BN-LIF, conv32(stride 2)-BN-LIF, dense 64-LIF, dense 10; logits = mean over time.
* ``nmnist-snn``: N-MNIST binary event frames (8, 2, 17, 17) (``rbl.load_data("nmnist")``),
  conv16-BN-LIF, avgpool 2, conv32-BN-LIF, avgpool 2, dense 10; logits = mean over time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.model import Model
from robustbench_lite.training.loop import accuracy, train_classifier
from robustbench_lite.worlds.snn import LIF, SpikingNet, Surrogate, set_surrogate, with_surrogate
from robustbench_lite.zoo import ZooEntry, register_zoo_model

__all__: list[str] = []

TRAIN_SURROGATE = Surrogate("atan", 2.0)


def digits_snn() -> SpikingNet:
    """Conv SNN for (1, 8, 8) digits, direct encoding over T = 4."""
    return SpikingNet(
        [
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            LIF(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            LIF(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            LIF(),
            nn.Linear(64, 10),
        ],
        time_steps=4,
        encoding="direct",
    )


def nmnist_snn() -> SpikingNet:
    """Conv SNN for (8, 2, 17, 17) binary event frames."""
    return SpikingNet(
        [
            nn.Conv2d(2, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            LIF(),
            nn.AvgPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            LIF(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 10),
        ],
        encoding="events",
    )


def _trainer(recipe: Mapping[str, Any]) -> Any:
    def train(net: nn.Module) -> dict[str, float]:
        from robustbench_lite.datasets import load_data

        x_tr, y_tr = load_data(recipe["data"], split="train", **recipe.get("data_kw", {}))
        x_te, y_te = load_data(recipe["data"], split="test", **recipe.get("data_kw", {}))
        set_surrogate(net, TRAIN_SURROGATE)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny nets: one thread is faster and the same on every machine
        try:
            train_classifier(
                net,
                x_tr,
                y_tr,
                epochs=recipe["epochs"],
                lr=recipe["lr"],
                batch_size=recipe["batch_size"],
                weight_decay=recipe.get("weight_decay", 0.0),
            )
        finally:
            torch.set_num_threads(threads)
            set_surrogate(net, None)  # the deployed model fires with Heaviside only
        return {
            "clean_accuracy": accuracy(net, x_te, y_te),
            "train_accuracy": accuracy(net, x_tr, y_tr),
        }

    return train


def _with_pdsg(model: Model) -> Model:
    return with_surrogate(model, "pdsg")


def _entry(
    name: str, description: str, build: Any, model_kwargs: Mapping[str, Any], **recipe: Any
) -> None:
    recipe = {
        "arch": build.__name__,
        "seed": 0,
        "train_surrogate": TRAIN_SURROGATE.label(),
        **recipe,
    }
    register_zoo_model(
        ZooEntry(
            name,
            description,
            build,
            _trainer(recipe),
            recipe,
            model_kwargs,
            finalize=_with_pdsg,
            data=recipe["data"],
            data_options=dict(recipe.get("data_kw", {})),
        )
    )


_entry(
    "digits-snn",
    "conv LIF SNN on 8x8 digits, direct encoding T=4, trained with ATan(alpha=2)",
    digits_snn,
    {
        "bounds": (0.0, 1.0),
        "input_shape": (1, 8, 8),
        "num_classes": 10,
        "default_threats": ("linf:0.1",),
    },
    data="digits",
    epochs=30,
    lr=1e-2,
    batch_size=64,
)
_entry(
    "nmnist-snn",
    "conv LIF SNN on N-MNIST binary event frames (8, 2, 17, 17), ATan(alpha=2)",
    nmnist_snn,
    {
        "bounds": (0.0, 1.0),
        "input_shape": (8, 2, 17, 17),
        "num_classes": 10,
        "default_threats": ("l0:200",),
    },
    data="nmnist",
    data_kw={"time_bins": 8, "downsample": 2},
    epochs=40,
    lr=5e-3,
    batch_size=32,
    weight_decay=1e-4,
)

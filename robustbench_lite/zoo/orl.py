"""Zoo model on the AT&T / ORL faces: a small CNN over 40 identities (``zoo:orl-cnn``).

The data come from the data folder (``$RBL_DATA_DIR/att_faces_orl``) through
``rbl.load_data("orl", split=..., size=(56, 46))``: the fixed seeded split of 7 train / 3 test
images per identity, downsampled 2x by area averaging, trained with label smoothing 0.1. Design note: an earlier
variant with a global 4x4 average pool before the dense layer could not express an ordered
top-10 at all (even an unconstrained 400-step CW^K from any start reached 0 of 10 samples), so
large-K attacks were meaningless on it; this one keeps the 14x11 spatial map. The network is an ``nn.Sequential``
whose last module is ``nn.Linear(128, 40)``, so attacks that need a feature extractor plus a
linear head (QuadAttack) split it automatically. Training takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lite.training.loop import accuracy
from robustbench_lite.zoo import ZooEntry, register_zoo_model

__all__: list[str] = []

ORL_SIZE = (56, 46)
ORL_MODEL = {
    "bounds": (0.0, 1.0),
    "input_shape": (1, *ORL_SIZE),
    "num_classes": 40,
    "default_threats": ("l2:1.0:top_k:5",),
}


def orl_cnn() -> nn.Sequential:
    """Two 3x3 conv blocks (16, 32 channels; 2x max-pooling), a 128-unit dense layer, 40 logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 28 x 23
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14 x 11
        nn.Flatten(),
        nn.Linear(32 * 14 * 11, 128),
        nn.ReLU(),
        nn.Linear(128, 40),
    )


def _train_smoothed(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Mapping[str, Any]
) -> None:
    """Adam + one-cycle schedule with label smoothing (global RNG, seeded by the zoo)."""
    epochs, batch_size, lr = recipe["epochs"], recipe["batch_size"], recipe["lr"]
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=recipe["weight_decay"])
    steps = epochs * ((len(y) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx], label_smoothing=recipe["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()


def _trainer(recipe: Mapping[str, Any]) -> Any:
    def train(net: nn.Module) -> dict[str, float]:
        from robustbench_lite.datasets import load_data

        size = tuple(recipe["size"])
        x_tr, y_tr = load_data("orl", split="train", size=size)
        x_te, y_te = load_data("orl", split="test", size=size)
        _train_smoothed(net, x_tr, y_tr, recipe)
        return {
            "clean_accuracy": accuracy(net, x_te, y_te),
            "train_accuracy": accuracy(net, x_tr, y_tr),
        }

    return train


_RECIPE = {
    "arch": "orl_cnn_v2",
    "data": "orl",
    "size": list(ORL_SIZE),
    "seed": 0,
    "epochs": 60,
    "lr": 3e-3,
    "batch_size": 32,
    "weight_decay": 1e-4,
    "label_smoothing": 0.1,
}
register_zoo_model(
    ZooEntry(
        "orl-cnn",
        "3-conv CNN on AT&T/ORL faces (40 identities, 56x46; needs RBL_DATA_DIR)",
        orl_cnn,
        _trainer(_RECIPE),
        _RECIPE,
        ORL_MODEL,
        data="orl",
        data_options={"size": ORL_SIZE},
    )
)

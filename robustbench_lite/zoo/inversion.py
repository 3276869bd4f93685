"""Zoo models of the model-inversion settings: a target and an evaluation classifier for each.

Both are trained on the setting's *private* training images only (see
``robustbench_lite.zoo.inversion_setting``): digits 0-4 of the 8x8 digits, or ORL identities
0-19 at 48x40. The evaluation classifier has a different architecture and seed than the target
and is trained with shift (and, for faces, flip) augmentation, as the GMI protocol asks: it
judges reconstructions and is never the model under attack.

Entries: ``zoo:digits-private-target`` (CNN), ``zoo:digits-private-eval`` (MLP),
``zoo:orl-private-target`` (CNN with max-pooling), ``zoo:orl-private-eval`` (CNN with
average pooling and larger kernels).
Every network is an ``nn.Sequential`` whose last layer is the linear classifier, so its
penultimate features are ``net[:-1](x)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from robustbench_lite.training.loop import accuracy
from robustbench_lite.zoo import ZooEntry, register_zoo_model

__all__: list[str] = []

#: (input_shape, private classes) per setting; a test checks it against the settings module,
#: which is not imported here so that listing the zoo does not import the attacks package.
SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 5),
    "orl": ((1, 48, 40), 20),
}


def digits_private_cnn() -> nn.Sequential:
    """Target on 1x8x8: two 3x3 convolutions (second strided), 64-unit dense, 5 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 5),
    )


def digits_private_mlp() -> nn.Sequential:
    """Evaluator on 1x8x8: 64-256-128-5 ReLU MLP (a different architecture from the target)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, 5),
    )


def orl_private_cnn() -> nn.Sequential:
    """Target on 1x48x40: three conv+max-pool blocks (16, 32, 64 channels), 128-unit dense, 20 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 6 * 5, 128),
        nn.ReLU(),
        nn.Linear(128, 20),
    )


def orl_private_avgpool() -> nn.Sequential:
    """Evaluator on 1x48x40: 5x5, 5x5, 3x3 convolutions with average pooling, 20 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 6 * 5, 128),
        nn.ReLU(),
        nn.Linear(128, 20),
    )


def augment(x: torch.Tensor, *, shift: int, flip: bool) -> torch.Tensor:
    """Random integer translations by up to ``shift`` pixels (zero fill) and optional h-flips.

    Uses the global generator (the zoo seeds it). Shape: x (N, C, H, W) -> same.
    """
    n, _, h, w = x.shape
    if shift:
        padded = F.pad(x, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (n,))
        dx = torch.randint(0, 2 * shift + 1, (n,))
        x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if flip:
        mirror = torch.rand(n) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
    return x


def train_private(net: nn.Module, recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Train ``net`` on the private training images of ``recipe["setting"]`` (Adam, cosine)."""
    from robustbench_lite.zoo.inversion_setting import get_setting

    setting = get_setting(recipe["setting"])
    x, y, idx = setting.private_data("train")
    x_te, y_te, _ = setting.private_data("test")
    epochs, batch = recipe["epochs"], recipe["batch_size"]
    opt = torch.optim.Adam(
        net.parameters(), lr=recipe["lr"], weight_decay=recipe.get("weight_decay", 0.0)
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for _ in range(epochs):
        net.train()
        xa = augment(x, shift=recipe.get("shift", 0), flip=recipe.get("flip", False))
        order = torch.randperm(len(y))
        for start in range(0, len(y), batch):
            part = order[start : start + batch]
            loss = F.cross_entropy(net(xa[part]), y[part])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    net.eval()
    return {
        "clean_accuracy": accuracy(net, x_te, y_te),
        "train_accuracy": accuracy(net, x, y),
        "train_pool_indices": idx.tolist(),
    }


def _entry(name: str, description: str, build: Callable[[], nn.Module], **recipe: Any) -> None:
    full = {"arch": build.__name__, **recipe}
    input_shape, num_classes = SHAPES[full["setting"]]
    kwargs = {
        "bounds": (0.0, 1.0),
        "input_shape": input_shape,
        "num_classes": num_classes,
        "default_threats": ("none:targeted",),
    }
    register_zoo_model(
        ZooEntry(name, description, build, lambda net: train_private(net, full), full, kwargs)
    )


_entry(
    "digits-private-target",
    "model-inversion target: CNN on private digits 0-4",
    digits_private_cnn,
    setting="digits",
    seed=0,
    epochs=30,
    lr=1e-2,
    batch_size=64,
)
_entry(
    "digits-private-eval",
    "model-inversion evaluator: MLP on private digits 0-4, shift-augmented",
    digits_private_mlp,
    setting="digits",
    seed=1,
    epochs=60,
    lr=3e-3,
    batch_size=64,
    shift=1,
)
_entry(
    "orl-private-target",
    "model-inversion target: CNN on ORL identities 0-19 at 48x40",
    orl_private_cnn,
    setting="orl",
    seed=0,
    epochs=60,
    lr=2e-3,
    batch_size=32,
)
_entry(
    "orl-private-eval",
    "model-inversion evaluator: avg-pool CNN on ORL identities 0-19, augmented",
    orl_private_avgpool,
    setting="orl",
    seed=1,
    epochs=50,
    lr=2e-3,
    batch_size=32,
    shift=2,
    flip=True,
)

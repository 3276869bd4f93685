"""Small, deterministic training loops shared by zoo recipes (standard and PGD adversarial)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__: list[str] = []


def pgd_linf_for_training(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    bounds: tuple[float, float],
) -> torch.Tensor:
    """Madry-style PGD with random start, used only to make adversarial training examples."""
    step = 2.5 * eps / steps
    delta = (torch.rand_like(x) * 2 - 1) * eps
    x_adv = (x + delta).clamp(*bounds)
    was_training = net.training
    net.eval()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(net(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(*bounds)
    net.train(was_training)
    return x_adv.detach()


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
    """Train ``net`` in place with Adam and a cosine schedule; PGD examples if ``adv_eps > 0``.

    Randomness comes from the global generator, which the zoo seeds inside ``fork_rng``.
    """
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(y) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            xb, yb = x[idx], y[idx]
            if adv_eps > 0:
                xb = pgd_linf_for_training(net, xb, yb, eps=adv_eps, steps=adv_steps, bounds=bounds)
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``net`` on (x, y), in [0, 1]."""
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(dim=1) == y).float().mean())

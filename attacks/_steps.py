"""Norm-specific pieces of gradient attacks: random starts and steepest-ascent steps."""

from __future__ import annotations

import torch

from robustbench_lite.core.types import Norm


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def random_start(
    x: torch.Tensor, norm: Norm, eps: float, generator: torch.Generator
) -> torch.Tensor:
    """A uniformly random point of the eps-ball around ``x`` (linf: uniform box; l2: uniform ball)."""
    cpu_gen = generator
    if norm is Norm.LINF:
        u = torch.rand(x.shape, generator=cpu_gen, dtype=x.dtype).to(x.device)
        return x + (2 * u - 1) * eps
    if norm is Norm.L2:
        g = torch.randn(x.shape, generator=cpu_gen, dtype=x.dtype).to(x.device)
        g = g / _view(g.flatten(1).norm(dim=1).clamp_min(1e-12), g)
        d = x[0].numel()
        r = torch.rand(x.shape[0], generator=cpu_gen, dtype=x.dtype).to(x.device) ** (1.0 / d)
        return x + g * _view(r * eps, g)
    raise ValueError(f"no random start for norm {norm.value}")


def ascent_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Steepest ascent direction of unit ``norm``-size: sign for linf, normalised gradient for l2."""
    if norm is Norm.LINF:
        return grad.sign()
    if norm is Norm.L2:
        return grad / _view(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
    raise ValueError(f"no ascent direction for norm {norm.value}")

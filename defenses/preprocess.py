"""Input-preprocessing defenses: Model -> Model wrappers applied before the network.

``bit_depth`` is feature squeezing by colour-depth reduction (Xu, Evans and Qi, "Feature
Squeezing: Detecting Adversarial Examples in Deep Neural Networks", NDSS 2018, arXiv 1704.01155):
each input value in ``[lo, hi]`` is rounded to one of ``2**bits`` levels.

Rounding has zero gradient almost everywhere, so a defended model would mask gradients. The
defended :class:`Model` therefore carries a BPDA surrogate (Athalye et al. 2018, arXiv
1802.00420): the same squeeze in the forward pass with the identity as its backward pass.
Attacks take gradients from the surrogate; success is always judged on the real defended model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from robustbench_lite.core.defense import Defense
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_defense


class _Squeeze(nn.Module):
    """Round inputs in ``[lo, hi]`` to ``2**bits`` levels; ``straight_through`` keeps gradients."""

    def __init__(self, model: Model, bits: int, straight_through: bool) -> None:
        super().__init__()
        self.inner = model.net
        self.bits = bits
        self.lo, self.hi = model.bounds
        self.mean, self.std = model.mean, model.std
        self.straight_through = straight_through

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2**self.bits - 1
        unit = (x - self.lo) / (self.hi - self.lo)
        q = torch.round(unit.clamp(0, 1) * levels) / levels * (self.hi - self.lo) + self.lo
        return x + (q - x).detach() if self.straight_through else q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        if self.mean is not None and self.std is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
            x = (x - mean) / torch.as_tensor(self.std, dtype=x.dtype, device=x.device).reshape(
                shape
            )
        return self.inner(x)


@register_defense("bit_depth")
@dataclass(frozen=True)
class BitDepth(Defense):
    """Bit-depth reduction (feature squeezing) of tensor inputs.

    Args:
        bits: bits per input value kept, 1..16 (5 is the paper's choice for CIFAR-10,
            1 for MNIST).

    Shape: x (N, ...) in the model's bounds; the defended model takes the same inputs.

    Example::

        defended = rbl.create_defense("bit_depth", bits=4).apply(model)
    """

    bits: int = 5

    def __post_init__(self) -> None:
        if (
            isinstance(self.bits, bool)
            or not isinstance(self.bits, int)
            or not 1 <= self.bits <= 16
        ):
            raise ParameterError("bits", f"{self.bits!r} must be an integer in 1..16")

    def apply(self, model: Model) -> Model:
        """The defended model: squeeze, then the original normalization and network."""
        base = model.differentiable
        surrogate = replace(
            base,
            net=_Squeeze(base, self.bits, straight_through=True),
            mean=None,
            std=None,
            surrogate=None,
            name=f"{base.name}+bit_depth({self.bits})/bpda",
        )
        return replace(
            model,
            net=_Squeeze(model, self.bits, straight_through=False),
            mean=None,
            std=None,
            surrogate=surrogate,
            name=f"{model.name}+bit_depth({self.bits})",
        )

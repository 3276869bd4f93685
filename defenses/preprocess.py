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

from dataclasses import dataclass
from functools import partial

import torch

from robustbench_lite.core.defense import Defense
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_defense

from ._transform import defend, from_unit, to_unit


def squeeze(x: torch.Tensor, lo: float, hi: float, *, bits: int) -> torch.Tensor:
    """``x`` (N, ...) in ``[lo, hi]`` rounded to ``2**bits`` evenly spaced levels (same shape)."""
    levels = 2**bits - 1
    return from_unit(torch.round(to_unit(x, lo, hi).clamp(0, 1) * levels) / levels, lo, hi)


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
        """The defended model: squeeze, then the original normalization and network; its
        surrogate squeezes in the forward pass with the identity as backward (BPDA)."""
        return defend(
            model,
            partial(squeeze, bits=self.bits),
            f"bit_depth({self.bits})",
            random=False,
            differentiable=False,
        )

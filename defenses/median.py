"""``median``: median smoothing of images (Xu, Evans and Qi, "Feature Squeezing", NDSS 2018,
arXiv 1704.01155, section 3.2: local spatial smoothing with a median filter).

Each pixel of each channel becomes the median of the ``size`` x ``size`` window around it
(edges padded by reflection; for even sizes the window reaches one pixel further right/down
and the median is the lower middle value, as ``torch.median`` returns it).

A median has a gradient almost everywhere (it is one of the window's inputs), but that
gradient is sparse: each output pixel sends gradient to a single input pixel, and pixels that
are never a window's median get none, so gradient attacks through it are weak (masking). The
surrogate is BPDA (Athalye et al. 2018, arXiv 1802.00420): the exact median forward, with the
backward pass of ``approx``: ``identity`` (their choice for such filters) or ``mean`` (the
default), the box (mean) filter of the same window, a smooth stand-in for the median.

Measured on zoo:digits-cnn (first 200 test digits, PGD 40 steps, linf 0.1; development
numbers): robust accuracy through median(2) 0.38 with the identity backward, 0.21 with the box
filter and 0.16 with the median's own gradient (median(3): 0.435, 0.335, 0.23). The true
gradient is the strongest here, so ``standard`` also runs APGD-CE on the real model's gradients
(``attacks/_eot.py``); the BPDA surrogate is there for the members that follow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from robustbench_lite.core.defense import Defense
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_defense

from ._transform import defend, require_image_model, require_images

APPROXIMATIONS = ("identity", "mean")


def _windows(x: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` windows around each pixel, (N, C, H, W, size * size)."""
    require_images(x, "median")
    before, after = (size - 1) // 2, size // 2
    padded = F.pad(x, (before, after, before, after), mode="reflect")
    return padded.unfold(2, size, 1).unfold(3, size, 1).flatten(-2)


def median_filter(x: torch.Tensor, lo: float, hi: float, *, size: int) -> torch.Tensor:
    """Median of each ``size`` x ``size`` window, per channel; x (N, C, H, W) -> same shape."""
    return _windows(x, size).median(dim=-1).values


def mean_filter(x: torch.Tensor, lo: float, hi: float, *, size: int) -> torch.Tensor:
    """Mean of each ``size`` x ``size`` window (the median's smooth BPDA stand-in)."""
    return _windows(x, size).mean(dim=-1)


@register_defense("median")
@dataclass(frozen=True)
class Median(Defense):
    """Median smoothing of image inputs, with a BPDA surrogate for attacks.

    Args:
        size: window side in pixels, 2..9 (the paper uses 2 x 2 on MNIST and CIFAR-10).
        approx: the BPDA backward pass: ``identity`` or ``mean`` (box filter of the window).

    Shape: x (N, C, H, W) in the model's bounds (H, W >= size); output of the same shape.

    Example::

        defended = rbl.create_defense("median", size=2).apply(model)
    """

    size: int = 2
    approx: str = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 2 <= self.size <= 9:
            raise ParameterError("size", f"{self.size!r} must be an integer in 2..9, e.g. 2")
        if self.approx not in APPROXIMATIONS:
            raise ParameterError(
                "approx", f"{self.approx!r}: choose one of {', '.join(APPROXIMATIONS)}"
            )

    def apply(self, model: Model) -> Model:
        """The defended model: median filter, then the original normalization and network."""
        require_image_model(model, "median")
        approx = partial(mean_filter, size=self.size) if self.approx == "mean" else None
        return defend(
            model,
            partial(median_filter, size=self.size),
            f"median({self.size})",
            random=False,
            differentiable=False,
            approx=approx,
        )

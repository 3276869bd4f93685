"""``resize_pad``: random resizing and padding (Xie, Wang, Zhang, Ren and Yuille, "Mitigating
Adversarial Effects Through Randomization", ICLR 2018, arXiv 1711.01991).

Each forward pass shrinks every image by its own random factor and pads it back at a random
offset, so two passes on the same input see different images. Xie et al. resize 299 x 299
images to a random rnd x rnd, rnd in [299, 331), and zero-pad at a random offset to 331 x 331
(the enlarged input their Inception network accepts). Deviations, so that any network keeps its
input size: the image is shrunk to ``r * H`` x ``r * W`` with ``r`` uniform in
``[min_scale, 1]`` (their 299/331 ratio is 0.90) and padded back to H x W; ``r`` and the offset
are continuous (bilinear resampling by ``grid_sample``), since integer sizes leave almost no
randomness on small images; padding uses the lower input bound (zero for inputs in [0, 1]).

The transform is differentiable, so attacks need no BPDA, but it is random: the model is
judged over repeated forward passes and attacks average gradients over draws (EOT, Athalye,
Carlini and Wagner 2018, arXiv 1802.00420, section 4.3, who break this defense with EOT).
Draws come from torch's global random stream, which attacks seed from their generator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F

from robustbench_lite.core.defense import Defense
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_defense

from ._transform import defend, require_image_model, require_images


def resize_pad(x: torch.Tensor, lo: float, hi: float, *, min_scale: float) -> torch.Tensor:
    """x (N, C, H, W) shrunk by a random factor in ``[min_scale, 1]`` per sample and padded
    (with ``lo``) back to H x W at a random offset; same shape, values in ``[lo, hi]``."""
    require_images(x, "resize_pad")
    n = x.shape[0]
    r = min_scale + (1 - min_scale) * torch.rand(n, device=x.device, dtype=x.dtype)
    # offsets as fractions of the free margin (1 - r), per axis
    oy, ox = torch.rand(2, n, device=x.device, dtype=x.dtype)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    # output normalized coordinate o maps to input (o + 1 - 2 * offset) / r - 1, where offset
    # is the pad before the image as a fraction of the side (align_corners=False convention)
    theta[:, 0, 0] = 1 / r
    theta[:, 0, 2] = (1 - 2 * ox * (1 - r)) / r - 1
    theta[:, 1, 1] = 1 / r
    theta[:, 1, 2] = (1 - 2 * oy * (1 - r)) / r - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x - lo, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + lo


@register_defense("resize_pad")
@dataclass(frozen=True)
class ResizePad(Defense):
    """Random resize-and-pad of image inputs (random: judged over draws, attacked with EOT).

    Args:
        min_scale: smallest shrink factor, in (0, 1) (0.9 matches Xie et al.'s 299/331).
        draws: forward passes the defended model is judged over (``Model.draws``).
        draw_fraction: fraction of those passes in which an attack must succeed (and the clean
            prediction be correct) for it to count (``Model.draw_fraction``).

    Shape: x (N, C, H, W) in the model's bounds; output of the same shape.

    Example::

        defended = rbl.create_defense("resize_pad", min_scale=0.8).apply(model)
    """

    min_scale: float = 0.8
    draws: int = 10
    draw_fraction: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.min_scale, bool) or not 0.0 < self.min_scale < 1.0:
            raise ParameterError("min_scale", f"{self.min_scale!r} must lie in (0, 1), e.g. 0.8")
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
            raise ParameterError("draws", f"{self.draws!r} must be an integer >= 1, e.g. 10")
        if not 0.0 < self.draw_fraction <= 1.0:
            raise ParameterError(
                "draw_fraction", f"{self.draw_fraction!r} must lie in (0, 1], e.g. 0.5"
            )

    def apply(self, model: Model) -> Model:
        """The defended model: random resize-and-pad, then normalization and the network."""
        require_image_model(model, "resize_pad")
        defended = defend(
            model,
            partial(resize_pad, min_scale=self.min_scale),
            f"resize_pad({self.min_scale:g})",
            random=True,
            differentiable=True,
        )
        return _with_judging(defended, self.draws, self.draw_fraction)


def _with_judging(model: Model, draws: int, fraction: float) -> Model:
    """``model`` (and its surrogate) judged over ``draws`` passes at ``fraction``."""
    surrogate = model.surrogate
    if surrogate is not None:
        surrogate = replace(surrogate, draws=draws, draw_fraction=fraction)
    return replace(model, draws=draws, draw_fraction=fraction, surrogate=surrogate)

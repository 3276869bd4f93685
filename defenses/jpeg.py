"""``jpeg``: JPEG-style compression of images (the input transform of Dziugaite et al. 2016,
arXiv 1608.00853, Das et al. 2017, arXiv 1705.02900, and Guo et al. 2018, arXiv 1711.00117).

Implemented in torch (no image library): values are mapped to 0..255 and shifted by -128, each
channel is cut into 8 x 8 blocks (edges padded by replication), each block goes through the
orthonormal 2-D DCT-II, its coefficients are divided by the standard JPEG luminance table
(Annex K of ITU-T T.81) scaled to ``quality`` by the IJG rule, rounded and multiplied back,
then inverted and rounded to whole 0..255 levels, as a decoder would. Deviations from a JPEG
codec: no YCbCr conversion or chroma subsampling (every channel uses the luminance table) and
no entropy coding (lossless, so it does not change the decoded image).

Rounding has zero gradient almost everywhere, so the surrogate is BPDA with the identity on
the backward pass (Athalye et al. 2018, arXiv 1802.00420, who break JPEG this way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from robustbench_lite.core.defense import Defense
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_defense

from ._transform import defend, from_unit, require_image_model, require_images, to_unit

#: ITU-T T.81 Annex K, table K.1: luminance quantisation table at quality 50.
LUMINANCE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
BLOCK = 8


def quality_table(quality: int) -> torch.Tensor:
    """The (8, 8) quantisation table at ``quality`` 1..100 (IJG scaling of :data:`LUMINANCE`)."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = torch.floor((torch.tensor(LUMINANCE, dtype=torch.float64) * scale + 50) / 100)
    return table.clamp(1, 255)


def dct_matrix(n: int = BLOCK) -> torch.Tensor:
    """The orthonormal DCT-II matrix (n, n): ``D @ v`` transforms, ``D.T @ c`` inverts."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def jpeg_compress(x: torch.Tensor, lo: float, hi: float, *, quality: int) -> torch.Tensor:
    """JPEG-style compression of x (N, C, H, W) in ``[lo, hi]``; output of the same shape."""
    require_images(x, "jpeg")
    n, c, h, w = x.shape
    ph, pw = -h % BLOCK, -w % BLOCK
    pixels = to_unit(x, lo, hi).clamp(0, 1) * 255 - 128
    if ph or pw:
        pixels = F.pad(pixels, (0, pw, 0, ph), mode="replicate")
    hb, wb = (h + ph) // BLOCK, (w + pw) // BLOCK
    blocks = pixels.reshape(n, c, hb, BLOCK, wb, BLOCK).transpose(3, 4)  # (N, C, hb, wb, 8, 8)
    d = dct_matrix().to(x.dtype).to(x.device)
    table = quality_table(quality).to(x.dtype).to(x.device)
    coeffs = d @ blocks @ d.T
    decoded = d.T @ (torch.round(coeffs / table) * table) @ d
    pixels = decoded.transpose(3, 4).reshape(n, c, h + ph, w + pw)[:, :, :h, :w]
    return from_unit((torch.round(pixels + 128).clamp(0, 255)) / 255, lo, hi)


@register_defense("jpeg")
@dataclass(frozen=True)
class Jpeg(Defense):
    """JPEG-style compression of image inputs, with a BPDA (identity) surrogate for attacks.

    Args:
        quality: JPEG quality 1..100 (75 in Das et al. 2017 and Guo et al. 2018; lower
            compresses harder).

    Shape: x (N, C, H, W) in the model's bounds; output of the same shape and range.

    Example::

        defended = rbl.create_defense("jpeg", quality=75).apply(model)
    """

    quality: int = 75

    def __post_init__(self) -> None:
        if (
            isinstance(self.quality, bool)
            or not isinstance(self.quality, int)
            or not 1 <= self.quality <= 100
        ):
            raise ParameterError("quality", f"{self.quality!r} must be an integer in 1..100")

    def apply(self, model: Model) -> Model:
        """The defended model: compress, then the original normalization and network."""
        require_image_model(model, "jpeg")
        return defend(
            model,
            partial(jpeg_compress, quality=self.quality),
            f"jpeg({self.quality})",
            random=False,
            differentiable=False,
        )

"""Per-sample attack losses (higher = closer to the attacker's goal), shape (N,)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> torch.Tensor:
    """CE of the true class (untargeted) or minus CE of the target class (targeted)."""
    if target is None:
        return F.cross_entropy(logits, y, reduction="none")
    return -F.cross_entropy(logits, target, reduction="none")


def margin(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """CW margin: best other logit minus true logit (untargeted), or target minus best other."""
    cls = y if target is None else target
    picked = logits.gather(1, cls[:, None])[:, 0]
    others = logits.scatter(1, cls[:, None], float("-inf")).amax(dim=1)
    return others - picked if target is None else picked - others


def dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020), untargeted or targeted; scale invariant."""
    srt = logits.sort(dim=1, descending=True).values
    c = logits.shape[1] - 1  # with fewer than 4 classes the 3rd/4th largest fall back to the last
    if target is None:
        return margin(logits, y, None) / (srt[:, 0] - srt[:, min(2, c)]).clamp_min(1e-12)
    z_y = logits.gather(1, y[:, None])[:, 0]
    z_t = logits.gather(1, target[:, None])[:, 0]
    return (z_t - z_y) / (srt[:, 0] - 0.5 * (srt[:, min(2, c)] + srt[:, min(3, c)])).clamp_min(
        1e-12
    )


LOSSES = {"ce": cross_entropy, "margin": margin, "dlr": dlr}

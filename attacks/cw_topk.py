"""CW^K: the Carlini-Wagner loss extended to ordered top-K targets (baseline of QuadAttacK).

As in QuadAttacK's ``losses/cw_extension.py`` (Paniagua et al. 2023, arXiv 2312.11510; the
ordered top-K extension of Zhang & Wu 2020), optimised with the same minimum-energy loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack

from ._topk_loop import LossFn, MinimumEnergyTopK


def cw_topk_loss(logits: torch.Tensor, target: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """(N,) CW^K loss of logits (N, C) for ordered targets (N, K).

    ``(1/K) sum_i ReLU(max_{j not in t_1..t_i} z_j - min_{k <= i} z_{t_k} + kappa)``: zero
    when every prefix of the targets sits above every class outside it by ``kappa``.
    """
    n, k = target.shape
    onehot = torch.zeros(n, k, logits.shape[1], dtype=torch.bool, device=logits.device)
    onehot.scatter_(2, target[:, :, None], True)
    placed = onehot.cumsum(dim=1).bool()  # (N, K, C): classes among t_1..t_i
    outside = logits[:, None, :].masked_fill(placed, float("-inf")).amax(dim=2)
    running_min = logits.gather(1, target).cummin(dim=1).values
    return torch.relu(outside - running_min + kappa).mean(dim=1)


@register_attack("cw_topk")
@dataclass(frozen=True)
class CWTopK(MinimumEnergyTopK):
    """Ordered top-K attack with the CW^K loss and the shared minimum-energy loop.

    Works on any classifier (no feature split needed). Args (besides ``budget``, ``lr``,
    ``c_upper``, ``batch_size``): ``kappa``, the confidence margin in logits (paper: 0).

    Example::

        result = rbl.create_attack("cw_topk", budget="9x30")(model, x, y, "none:top_k:5")
    """

    kappa: float = 0.0

    def make_loss(
        self, model: Model, x: torch.Tensor, target: torch.Tensor, stats: dict[str, Any]
    ) -> LossFn:
        net = model.differentiable

        def loss(x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = net(x_adv)
            return logits, cw_topk_loss(logits, target, self.kappa)

        return loss

"""AD: adversarial distillation toward an ordered top-K target distribution (Zhang & Wu 2020).

Baseline of QuadAttacK (Paniagua et al. 2023, ``losses/adversarial_distillation``), optimised
with the same minimum-energy loop as QuadAttack and CW^K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack

from ._feature_split import split_model
from ._topk_loop import LossFn, MinimumEnergyTopK

PRIORS = ("head", "zero")


def target_distribution(
    similarity: torch.Tensor, target: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor:
    """(N, C) distribution q: ``softmax(s)`` with ``s_j = mean_k sim[t_k, j]``, ``s_{t_k} = alpha - (k-1) beta``.

    ``similarity`` is (C, C) (zeros for no prior); ``target`` is (N, K).
    """
    scores = similarity[target].mean(dim=1)
    k = target.shape[1]
    ranks = alpha - beta * torch.arange(k, dtype=scores.dtype, device=scores.device)
    scores = scores.scatter(1, target, ranks.expand(target.shape[0], -1))
    return scores.softmax(dim=1)


@register_attack("ad_topk")
@dataclass(frozen=True)
class ADTopK(MinimumEnergyTopK):
    """Ordered top-K attack minimising ``KL(q || softmax(z))`` toward a target distribution q.

    Deviation from the paper: AD's similarity prior is the cosine similarity of GloVe word
    embeddings of the ImageNet label names; a testbench model has no label embeddings, so
    ``prior="head"`` uses the cosine similarity of the rows of the model's linear head
    (class weight vectors; needs the feature split of QuadAttack), and ``prior="zero"`` uses
    none (works on any classifier).

    Args (besides ``budget``, ``lr``, ``c_upper``, ``batch_size``):
        alpha, beta: score of t_k is ``alpha - (k - 1) * beta`` (paper: 10 and 0.3).
        prior: ``"head"`` or ``"zero"``.
    """

    alpha: float = 10.0
    beta: float = 0.3
    prior: str = "head"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prior not in PRIORS:
            raise ParameterError("prior", f"{self.prior!r}: choose one of {', '.join(PRIORS)}")

    def similarity(self, model: Model, x: torch.Tensor, num_classes: int) -> torch.Tensor:
        """(C, C) class similarity used by the prior."""
        if self.prior == "zero":
            return torch.zeros(num_classes, num_classes, device=x.device)
        rows = F.normalize(split_model(model, check_inputs=x[:8]).weight, dim=1)
        return rows @ rows.T

    def make_loss(
        self, model: Model, x: torch.Tensor, target: torch.Tensor, stats: dict[str, Any]
    ) -> LossFn:
        net = model.differentiable
        with torch.no_grad():
            num_classes = net(x[:1]).shape[1]
            q = target_distribution(
                self.similarity(model, x, num_classes), target, self.alpha, self.beta
            )
        log_q = q.clamp_min(1e-30).log()

        def loss(x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = net(x_adv)
            kl = (q * (log_q - logits.log_softmax(dim=1))).sum(dim=1)
            return logits, kl

        return loss

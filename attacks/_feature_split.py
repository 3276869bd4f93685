"""Split a classifier into a feature extractor and its linear head: ``logits = W f(x) + b``.

Automatic for an ``nn.Sequential`` whose last module is ``nn.Linear`` and for networks that
expose ``features`` and ``head`` modules (``logits = head(features(x))``, head an ``nn.Linear``
or an ``nn.Sequential`` holding only one). Anything else, e.g. an MLP head or a normalised
cosine classifier, raises :class:`ModelSplitError`: QuadAttack's QP needs logits that are linear
in the features. The split is checked against the model's own logits on the first batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from robustbench_lite.core.errors import ModelSplitError
from robustbench_lite.core.model import Model


@dataclass(frozen=True)
class FeatureSplit:
    """A model seen as ``logits = features(x) @ weight.T + bias``.

    Attributes:
        features: maps inputs in the model's bounds (N, ...) to features (N, d); applies the
            model's normalisation first. Differentiable.
        weight: (C, d) rows of the linear head.
        bias: (C,) biases of the linear head (zeros when the layer has none).
    """

    features: Callable[[torch.Tensor], torch.Tensor]
    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, C) logits of features (N, d)."""
        return feats @ self.weight.T + self.bias


def _as_linear(module: nn.Module, where: str, model_name: str) -> nn.Linear:
    if isinstance(module, nn.Sequential) and len(module) == 1:
        module = module[0]
    if not isinstance(module, nn.Linear):
        raise ModelSplitError(
            f"{model_name}: {where} is {type(module).__name__}, not nn.Linear; this attack needs "
            "logits linear in the features (logits = W f + b): end the network with nn.Linear"
        )
    return module


def _body_and_head(
    net: nn.Module, model_name: str
) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Linear]:
    if isinstance(net, nn.Sequential):
        if len(net) == 0:
            raise ModelSplitError(
                f"{model_name}: the nn.Sequential is empty; it has no linear head"
            )
        last = _as_linear(net[-1], "the last module of the nn.Sequential", model_name)
        return nn.Sequential(*list(net)[:-1]), last
    features, head = getattr(net, "features", None), getattr(net, "head", None)
    if isinstance(features, nn.Module) and isinstance(head, nn.Module):
        return features, _as_linear(head, "its `head`", model_name)
    raise ModelSplitError(
        f"{model_name}: cannot find the linear head of {type(net).__name__}; use an nn.Sequential "
        "ending in nn.Linear, or give the network `features` and `head` (nn.Linear) modules "
        "with forward(x) = head(features(x))"
    )


def split_model(model: Model, check_inputs: torch.Tensor | None = None) -> FeatureSplit:
    """Split ``model.differentiable`` into features and linear head; verify on ``check_inputs``.

    Raises:
        ModelSplitError: no linear head, or ``head(features(x))`` differs from the logits.
    """
    diff = model.differentiable
    body, head = _body_and_head(diff.net, model.name)
    weight = head.weight.detach()
    bias = (
        head.bias.detach()
        if head.bias is not None
        else torch.zeros(weight.shape[0], dtype=weight.dtype)
    )

    def features(x: torch.Tensor) -> torch.Tensor:
        return body(diff.normalize(x)).flatten(1)

    split = FeatureSplit(features=features, weight=weight, bias=bias.to(weight.device))
    if check_inputs is not None:
        with torch.no_grad():
            feats = features(check_inputs)
            if feats.shape[1] != weight.shape[1]:
                raise ModelSplitError(
                    f"{model.name}: features have {feats.shape[1]} dimensions but the head expects "
                    f"{weight.shape[1]}; make forward(x) = head(features(x))"
                )
            expected = diff(check_inputs)
            got = split.logits(feats)
            if not torch.allclose(
                got, expected, rtol=1e-4, atol=1e-4 * (1 + float(expected.abs().max()))
            ):
                raise ModelSplitError(
                    f"{model.name}: head(features(x)) differs from the model's logits by up to "
                    f"{float((got - expected).abs().max()):.3g}; make forward(x) = head(features(x))"
                )
    return split

"""Shared machinery of input-transform defenses: wrap a Model with ``t(x)`` before its network.

A transform defense is a function ``t`` from inputs in the model's bounds to inputs in the same
bounds and shape. :func:`defend` returns the defended :class:`Model` (the real transform) and,
when ``t`` is not usefully differentiable, a BPDA surrogate (Athalye, Carlini and Wagner,
"Obfuscated Gradients Give a False Sense of Security", ICML 2018, arXiv 1802.00420, section
4.1): the forward pass is the exact ``t(x)``, the backward pass is that of an approximation
``g(x)`` (the identity unless the defense gives a better one), written as
``t(x).detach() + (g(x) - g(x).detach())`` (bit-exact forward). Attacks take gradients from
the surrogate; success is always judged on the real defended model. Random transforms are
marked so that attacks use EOT and the model is judged over repeated forward passes
(``Model.draws``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from robustbench_lite.core.errors import DataError
from robustbench_lite.core.model import AppliedDefense, Model

#: ``t(x, lo, hi) -> x'``: a transform of inputs (N, ...) in ``[lo, hi]``, same shape and range.
Transform = Callable[[torch.Tensor, float, float], torch.Tensor]


class TransformNet(nn.Module):
    """``inner(normalize(t(x)))``, or with ``approx`` the BPDA form of ``t`` (exact forward,
    backward of ``approx``; ``approx`` None with ``bpda`` True is the identity)."""

    def __init__(
        self,
        model: Model,
        transform: Transform,
        *,
        bpda: bool = False,
        approx: Transform | None = None,
    ) -> None:
        super().__init__()
        self.inner = model.net
        self.transform = transform
        self.bpda = bpda
        self.approx = approx
        self.lo, self.hi = model.bounds
        self.mean, self.std = model.mean, model.std

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """The transformed inputs (N, ...), in the model's bounds; BPDA form when ``bpda``."""
        out = self.transform(x, self.lo, self.hi)
        if not self.bpda:
            return out
        through = x if self.approx is None else self.approx(x, self.lo, self.hi)
        # bit-exact forward (through - through is exactly 0), backward of ``through``
        return out.detach() + (through - through.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        if self.mean is not None and self.std is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
            std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
            x = (x - mean) / std
        out: torch.Tensor = self.inner(x)
        return out


def defend(
    model: Model,
    transform: Transform,
    label: str,
    *,
    random: bool,
    differentiable: bool,
    approx: Transform | None = None,
) -> Model:
    """``model`` with ``transform`` applied to its inputs first.

    Args:
        model: the model to defend (it may already carry defenses and a surrogate).
        transform: the defense's exact transform.
        label: display name with parameters, e.g. ``"median(3)"``.
        random: the transform draws random numbers (EOT and repeated-pass judging apply).
        differentiable: False for transforms with useless gradients (rounding); the surrogate
            then uses BPDA with ``approx`` (None: the identity) on the backward pass.
        approx: a differentiable approximation of ``transform`` for the BPDA backward pass.

    Returns:
        The defended model: ``net`` applies the exact transform; ``surrogate`` (only when the
        defense is not differentiable or the model already had one) is the gradient twin.
    """
    info = AppliedDefense(label, random=random, differentiable=differentiable)
    surrogate = None
    if not differentiable or model.surrogate is not None:
        base = model.differentiable
        surrogate = replace(
            base,
            net=TransformNet(base, transform, bpda=not differentiable, approx=approx),
            mean=None,
            std=None,
            surrogate=None,
            name=f"{base.name}+{label}" + ("/bpda" if not differentiable else ""),
            defenses=(*base.defenses, info),
        )
    return replace(
        model,
        net=TransformNet(model, transform),
        mean=None,
        std=None,
        surrogate=surrogate,
        name=f"{model.name}+{label}",
        defenses=(*model.defenses, info),
    )


def to_unit(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``x`` in ``[lo, hi]`` mapped to ``[0, 1]``."""
    return (x - lo) / (hi - lo)


def from_unit(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``u`` in ``[0, 1]`` mapped back to ``[lo, hi]``."""
    return u * (hi - lo) + lo


def require_images(x: torch.Tensor, defense: str) -> None:
    """Raise :class:`DataError` unless ``x`` is an image batch (N, C, H, W)."""
    if x.dim() != 4:
        raise DataError(
            f"{defense} takes image inputs (N, C, H, W); got shape {tuple(x.shape)}: use "
            "bit_depth for other inputs"
        )


def require_image_model(model: Model, defense: str) -> None:
    """Raise :class:`DataError` when ``model.input_shape`` is known and not (C, H, W)."""
    if model.input_shape is not None and len(model.input_shape) != 3:
        raise DataError(
            f"{defense} takes image inputs (N, C, H, W) but {model.name} takes samples of shape "
            f"{tuple(model.input_shape)}: use bit_depth for other inputs"
        )

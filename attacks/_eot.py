"""Adaptive attacks on input-transform defenses: BPDA and EOT views of a defended model.

Athalye, Carlini and Wagner ("Obfuscated Gradients Give a False Sense of Security", ICML 2018,
arXiv 1802.00420) break transform defenses two ways, both chosen here from what the model
declares in :attr:`Model.defenses`:

* **BPDA** (section 4.1) for defenses whose gradient is useless (rounding, quantisation): the
  defense module puts a surrogate in :attr:`Model.surrogate` (exact forward, differentiable
  approximation on the backward pass), and every gradient attack already takes gradients from
  :attr:`Model.differentiable`. Because a BPDA approximation can be worse than the true gradient
  where one exists (e.g. a median filter, which is piecewise linear), :func:`adaptive_plan` also
  offers the real model's own gradients (``exact``) as a second view.
* **EOT** (section 4.3, expectation over transformation) for random defenses: the gradient view
  averages over ``k`` independent draws of the defense. Athalye et al. average the gradient of
  the loss over draws; :class:`EOTNet` returns the mean over draws of the log-probabilities,
  whose gradient is that average for the cross-entropy's true-class term (their objective
  E_t[log P(y | t(x))]). Deviation: the loss is then computed once on those averaged
  log-probabilities, so for losses other than cross-entropy (DLR, margins) the gradient is that
  of the loss at the averaged prediction rather than the average of per-draw gradients. This
  lets every member of ``standard`` use EOT unchanged.

Success is always judged on the real defended model (over repeated passes when it is random,
see :func:`robustbench_lite.core.attack.judge`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from robustbench_lite.core.model import Model


class EOTNet(nn.Module):
    """Mean log-probabilities (N, C) of ``k`` independent forward passes of ``model``.

    The batch is repeated ``k`` times in one pass, so each copy gets its own random draw of the
    defense (the defense draws per sample).
    """

    def __init__(self, model: Model, k: int) -> None:
        super().__init__()
        self.model = model
        self.k = k
        self.inner = model.net  # registered, so device moves and eval() reach it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        logits = self.model(x.repeat(self.k, *([1] * (x.dim() - 1))))
        logp = torch.log_softmax(logits, dim=1)
        return logp.reshape(self.k, n, -1).mean(dim=0)


def eot_view(model: Model, k: int) -> Model:
    """``model`` whose gradient view averages ``k`` draws of its (random) differentiable view."""
    base = model.differentiable
    eot = replace(
        base,
        net=EOTNet(base, k),
        mean=None,
        std=None,
        surrogate=None,
        defenses=(),
        name=f"{base.name}/eot{k}",
    )
    return replace(model, surrogate=eot)


@dataclass(frozen=True)
class Plan:
    """How ``standard`` attacks one model.

    Args:
        model: the model the members attack (its ``differentiable`` view is BPDA and/or EOT).
        exact: the real model with its own gradients (EOT if random), attacked first when the
            model carries a BPDA surrogate; None otherwise.
        label: ``"none"``, ``"BPDA"``, ``"EOT"`` or ``"BPDA+EOT"``.
        reason: why, in words, for the result and the report.
    """

    model: Model
    exact: Model | None
    label: str
    reason: str


def adaptive_plan(model: Model, eot_samples: int) -> Plan:
    """The adaptive attack for ``model``'s declared defenses (see the module docstring)."""
    rough = [d.name for d in model.defenses if not d.differentiable]
    random = [d.name for d in model.defenses if d.random]
    bpda = bool(rough) and model.surrogate is not None
    parts, why = [], []
    target, exact = model, None
    if bpda:
        parts.append("BPDA")
        why.append(
            f"{', '.join(rough)} {'is' if len(rough) == 1 else 'are'} not differentiable: "
            "gradients come from the BPDA surrogate, and from the real model's own gradients first"
        )
        exact = replace(model, surrogate=None)
    elif rough:
        why.append(
            f"{', '.join(rough)} {'is' if len(rough) == 1 else 'are'} not differentiable and the "
            "model carries no surrogate: gradient attacks may be masked"
        )
    if random:
        parts.append("EOT")
        why.append(
            f"{', '.join(random)} {'is' if len(random) == 1 else 'are'} random: gradients "
            f"averaged over {eot_samples} draws"
        )
        target = eot_view(model, eot_samples)
        exact = eot_view(exact, eot_samples) if exact is not None else None
    label = "+".join(parts) or "none"
    reason = f"{label} used because " + "; ".join(why) if parts else "; ".join(why)
    return Plan(model=target, exact=exact, label=label, reason=reason)


def zero_gradient_fraction(model: Model, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of samples (N, ...) whose cross-entropy input gradient through the real model
    (never its surrogate) is exactly zero or not finite: a direct sign of gradient masking."""
    if not len(y):
        return 0.0
    x_in = x.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x_in), y, reduction="sum")
    if not loss.requires_grad:
        return 1.0
    (grad,) = torch.autograd.grad(loss, x_in, allow_unused=False)
    flat = grad.flatten(1)
    dead = (flat == 0).all(dim=1) | ~torch.isfinite(flat).all(dim=1)
    return float(dead.float().mean())

"""GMI, "The Secret Revealer": generative model inversion (Zhang, Jia, Pei, Wang, Li, Song,
CVPR 2020, arXiv 1911.07135; official code AI-secure/GMI-Attack).

Threat ``none:targeted``: white-box target classifier, the class to reconstruct, and public
images of *other* classes from the same domain (the setting's public split).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.nn import functional as F

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import ParameterError, UnsupportedThreatError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm
from robustbench_lite.zoo.inversion_setting import InversionSetting, setting_for_model

from ._inversion_eval import evaluate_reconstructions, load_evaluator
from ._inversion_prior import DEFAULT_PRIORS, GanPrior, load_prior


@register_attack("gmi")
@dataclass(frozen=True)
class GMI(Attack):
    """Latent optimisation through a GAN prior trained on public data only.

    Stage 1 (cached): a WGAN-GP prior on the setting's public images (``_inversion_prior``).
    Stage 2: for each requested class y, minimise over z (clipped to [-clip, clip])

        L(z) = -D(G(z)) + lambda_id * CE(T(G(z)), y)

    with GMI's Nesterov-form momentum SGD (v <- mu v - lr grad; z <- z - mu v_prev + (1 + mu) v),
    from ``restarts`` random starts z ~ N(0, I) drawn from ``generator``; for each sample the
    restart whose final target logit for y is highest is kept (selection by T, never by the
    evaluator). Paper values (MNIST): lambda_id 100, mu 0.9, lr 0.01, 1500 iterations, 5 restarts.

    Deviations: the loss is summed over the batch (the official code averages it), so each
    latent is optimised independently of the others and of the batch size; the scaled-down prior
    is described in ``_inversion_prior``.

    Args:
        setting: ``digits`` / ``orl``, or None to pick the one matching the model's shape.
        iterations: latent optimisation steps.
        restarts: random starts per sample.
        lr, momentum: the momentum SGD step.
        lambda_id: weight of the identity loss.
        clip: latent box half-width.
        gan_steps, gan_width: override the setting's prior recipe (e.g. a tiny prior in tests).

    Shape: x (N, C, H, W) gives only the output shape (its values are unused); target (N,) the
    private classes to reconstruct; y (N,) only feeds the base class's clean-accuracy
    bookkeeping (pass y = target). ``x_adv`` are the reconstructions, ``metrics`` the privacy
    scores of the setting's evaluation classifier (``eval_top1``, ``eval_top5``, ``knn_dist``).
    """

    supports = frozenset({(Norm.NONE, Goal.TARGETED)})
    quick_params = {"iterations": 100, "restarts": 2, "gan_steps": 40, "gan_width": 8}
    #: privacy scores of the evaluation classifier (``invert:`` checks add ``target_top1``)
    metric_names = ("eval_top1", "eval_top5", "knn_dist")
    setting: str | None = None
    iterations: int = 1500
    restarts: int = 5
    lr: float = 0.01
    momentum: float = 0.9
    lambda_id: float = 100.0
    clip: float = 1.0
    gan_steps: int | None = None
    gan_width: int | None = None

    def __post_init__(self) -> None:
        for param, count in (("iterations", self.iterations), ("restarts", self.restarts)):
            if count < 1:
                raise ParameterError(param, f"{count} must be >= 1")
        for param, size in (("lr", self.lr), ("clip", self.clip)):
            if size <= 0:
                raise ParameterError(param, f"{size} must be > 0")

    def prior(self, setting: InversionSetting) -> GanPrior:
        """The (cached) GAN prior of ``setting`` with this attack's overrides."""
        recipe = DEFAULT_PRIORS[setting.name]
        if self.gan_steps is not None:
            recipe = replace(recipe, steps=self.gan_steps)
        if self.gan_width is not None:
            recipe = replace(recipe, width=self.gan_width)
        return load_prior(recipe)

    def context(self, model: Model, setting: InversionSetting) -> Mapping[str, Any]:
        """Extra state the identity loss needs (none for GMI); its float entries go into ``metrics``."""
        return {}

    def identity_loss(
        self, model: Model, context: Mapping[str, Any], images: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """Per-sample identity loss (B,): GMI's cross-entropy of the target model."""
        return F.cross_entropy(model.differentiable(images), target, reduction="none")

    def run(
        self,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> AttackOutput:
        if target is None:
            raise UnsupportedThreatError(f"{self.name} needs target classes to reconstruct")
        setting = setting_for_model(model, self.setting)
        prior = self.prior(setting)
        context = self.context(model, setting)
        n, r = len(target), self.restarts
        z0 = torch.randn(r * n, prior.z_dim, generator=generator).clamp(-self.clip, self.clip)
        targets = target.repeat(r)  # index k * n + i is restart k of sample i
        z = self.optimise(model, prior, context, z0.to(model.device), targets)
        with torch.no_grad():
            images = prior.generator(z)
            logit = model.logits(images).gather(1, targets[:, None])[:, 0]
            best = logit.reshape(r, n).argmax(dim=0)
            x_rec = images.reshape(r, n, *images.shape[1:])[best, torch.arange(n)]
        metrics = evaluate_reconstructions(model, load_evaluator(setting), x_rec, target, setting)
        metrics["prior_recipe_hash"] = prior.meta["recipe_hash"]
        metrics.update(
            {k: v for k, v in context.items() if isinstance(v, float)}
        )  # e.g. lambda_reg
        return AttackOutput(x_rec, metrics=metrics)

    def optimise(
        self,
        model: Model,
        prior: GanPrior,
        context: Mapping[str, Any],
        z: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        """Nesterov-form momentum SGD on L(z) = -D(G(z)) + lambda_id * L_id; z (B, z_dim)."""
        velocity = torch.zeros_like(z)
        for _ in range(self.iterations):
            z = z.detach().requires_grad_(True)
            images = prior.generator(z)
            loss = -prior.critic(images)[:, 0] + self.lambda_id * self.identity_loss(
                model, context, images, target
            )
            (grad,) = torch.autograd.grad(loss.sum(), z)
            previous = velocity
            velocity = self.momentum * velocity - self.lr * grad
            z = (z.detach() - self.momentum * previous + (1 + self.momentum) * velocity).clamp(
                -self.clip, self.clip
            )
        return z.detach()

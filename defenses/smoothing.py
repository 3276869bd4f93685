"""Randomized smoothing as a defense: the smoothed classifier that abstains when unsure.

Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019 (arXiv 1902.02918). ``smooth(model, sigma)`` gives ``g(x) = argmax_c P(f(x + e) = c)``,
``e ~ N(0, sigma^2 I)``, for the base classifier ``f = model``, evaluated by the paper's
PREDICT (``n`` Monte-Carlo votes, two-sided binomial test of the two top classes at level
``alpha``; abstains, class -1, when the test does not reject). ``certify`` is the paper's
CERTIFY (the same code as the ``smoothing`` verifier: ``robustbench_lite.core.smoothing``).

The adaptive attack of a smoothed classifier is :func:`smooth_adv_l2`: l2 PGD on the soft
smoothed classifier ``G(x) = E_e[softmax(f(x + e))]`` (Salman et al., "Provably Robust Deep
Learning via Adversarially Trained Smoothed Classifiers", NeurIPS 2019, arXiv 1906.04584), with
the expectation estimated by ``m`` draws per step (EOT, Athalye et al. 2018). Deviation from
Salman et al.: fresh noise every step by default (they reuse one set of draws for all steps;
``fixed_noise=True`` does that). Whether the attack worked is judged by PREDICT on the real
smoothed classifier, never by the soft surrogate.

The smoothed classifier is not a :class:`~robustbench_lite.core.model.Model`: it abstains and it
is random, so it has no logits to hand to an attack. Noise-augmented training of the base model
(the paper trains ``f`` with the same Gaussian noise) is not done here.

Example::

    from robustbench_lite.defenses.smoothing import smooth
    g = smooth(model, sigma=0.25, seed=0)
    classes = g.predict(x)              # (N,) int64, -1 = abstain
    certs = g.certify(x, n0=100, n=10_000)  # certs[i].prediction, certs[i].radius
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.smoothing import (
    ABSTAIN,
    Certificate,
    certify,
    check_smoothing_params,
    noise_counts,
    predict,
)

__all__ = ["ABSTAIN", "SmoothedClassifier", "smooth", "smooth_adv_l2"]


@dataclass(frozen=True)
class SmoothedClassifier:
    """The Gaussian-smoothed classifier of ``base`` (see the module docstring).

    Args:
        base: the base classifier ``f`` (its bounds are those of the inputs; noise is not clipped).
        sigma: noise standard deviation in input units.
        n: PREDICT's Monte-Carlo votes per input.
        alpha: PREDICT's (and CERTIFY's) failure probability.
        batch_size: noisy copies per forward pass.
        seed: seed of the noise generator (None: torch's global generator); each call draws
            fresh noise from it, so repeated calls are independent draws.
    """

    base: Model
    sigma: float
    n: int = 10_000
    alpha: float = 0.001
    batch_size: int = 1000
    seed: int | None = None
    _generators: dict[str, torch.Generator] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        check_smoothing_params(
            sigma=self.sigma, n=self.n, alpha=self.alpha, batch_size=self.batch_size
        )

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The seeded noise generator for ``device`` (None without a seed)."""
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def counts(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Votes (N, C) of the base classifier under ``n`` (default: ``self.n``) draws per input."""
        return noise_counts(
            self.base,
            x,
            sigma=self.sigma,
            n=n or self.n,
            batch_size=self.batch_size,
            generator=self.generator(x.device),
        )

    def predict(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """PREDICT: classes (N,) int64 for ``x`` (N, ...), :data:`ABSTAIN` (-1) when unsure."""
        return predict(
            self.base,
            x,
            sigma=self.sigma,
            n=n or self.n,
            alpha=self.alpha,
            batch_size=self.batch_size,
            generator=self.generator(x.device),
        )

    def certify(self, x: torch.Tensor, *, n0: int = 100, n: int | None = None) -> list[Certificate]:
        """CERTIFY: a certified class and l2 radius (input units) per input, or an abstention."""
        return certify(
            self.base,
            x,
            sigma=self.sigma,
            n0=n0,
            n=n or self.n,
            alpha=self.alpha,
            batch_size=self.batch_size,
            generator=self.generator(x.device),
        )

    def soft_log_probs(
        self, x: torch.Tensor, m: int, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log of the soft smoothed classifier ``mean_j softmax(f(x + e_j))`` (N, C), differentiable.

        ``m`` draws per input; ``noise`` (m, N, ...) fixes them (unit variance, scaled by sigma).
        """
        if noise is None:
            noise = torch.randn(
                (m, *x.shape), generator=self.generator(x.device), device=x.device, dtype=x.dtype
            )
        noisy = (x.unsqueeze(0) + self.sigma * noise).reshape(-1, *x.shape[1:])
        probs = F.softmax(self.base(noisy), dim=1).reshape(m, x.shape[0], -1).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12))


def smooth(
    model: Model,
    sigma: float,
    *,
    n: int = 10_000,
    alpha: float = 0.001,
    batch_size: int = 1000,
    seed: int | None = None,
) -> SmoothedClassifier:
    """The smoothed classifier of ``model`` with noise level ``sigma`` (input units); see
    :class:`SmoothedClassifier`."""
    return SmoothedClassifier(model, sigma, n=n, alpha=alpha, batch_size=batch_size, seed=seed)


def smooth_adv_l2(
    g: SmoothedClassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    steps: int = 20,
    m: int = 32,
    step_size: float | None = None,
    fixed_noise: bool = False,
) -> torch.Tensor:
    """SmoothAdv: l2 PGD against the soft smoothed classifier (Salman et al. 2019), EOT over noise.

    Maximises the cross-entropy of ``g.soft_log_probs`` at label ``y`` (N,) over the l2 ball of
    radius ``eps`` (a number, or one per sample (N,)) around ``x`` (N, ...) intersected with
    the base model's bounds, with ``m``
    noise draws per step; normalised-gradient steps of ``step_size`` (default ``2.5 eps /
    steps``), projected after each. Returns the last iterate (N, ...), inside the ball and
    bounds. Judge it with ``g.predict``.
    """
    radius = torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(x.shape[0])
    if not bool((radius >= 0).all()) or not bool(torch.isfinite(radius).all()):
        raise ParameterError("eps", f"{eps!r} must be a finite radius >= 0")
    if steps < 1 or m < 1:
        raise ParameterError("steps" if steps < 1 else "m", "must be a whole number >= 1")
    lo, hi = g.base.bounds
    dims = (-1,) + (1,) * (x.dim() - 1)
    step = (
        torch.full_like(radius, step_size) if step_size is not None else 2.5 * radius / steps
    ).reshape(dims)
    eps_b = radius.reshape(-1)
    noise = (
        torch.randn((m, *x.shape), generator=g.generator(x.device), device=x.device, dtype=x.dtype)
        if fixed_noise
        else None
    )
    x_adv = x.detach().clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.nll_loss(g.soft_log_probs(x_adv, m, noise), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        norm = grad.reshape(x.shape[0], -1).norm(dim=1).clamp_min(1e-12).reshape(dims)
        x_adv = x_adv.detach() + step * grad / norm
        delta = x_adv - x
        scale = (eps_b / delta.reshape(x.shape[0], -1).norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        x_adv = (x + delta * scale.reshape(dims)).clamp(lo, hi)
    return x_adv.detach()

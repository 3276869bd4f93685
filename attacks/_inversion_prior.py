"""The generative prior of GMI/LOMMA: a small DCGAN-style WGAN-GP trained on public images only.

Stage 1 of GMI (Zhang et al., CVPR 2020, arXiv 1911.07135; official code AI-secure/GMI-Attack):
a WGAN-GP with ``n_critic`` critic steps per generator step, critic loss
``-(E[D(x_real)] - E[D(G(z))]) + 10 * GP``, generator loss ``-E[D(G(z))]``, Adam with betas
(0.5, 0.999), z ~ N(0, I). Deviation: the networks are scaled down to 8x8 digits and 48x40 faces
(``width`` sets the channel count), and training runs a fixed number of generator steps.

Trained networks are cached like zoo models: under ``cache_dir()/inversion`` keyed by the zoo's
recipe hash, written atomically, loaded with ``weights_only=True``. The metadata records the pool
indices of every training image, which :meth:`InversionSetting.check_public_only` has approved.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.io import atomic_write_bytes, cache_dir, recipe_hash
from robustbench_lite.zoo.inversion_setting import InversionSetting, get_setting

__all__ = ["DEFAULT_PRIORS", "GanPrior", "PriorRecipe", "cached_modules", "load_prior"]
log = logging.getLogger(__name__)


def cached_modules(
    name: str,
    recipe: Mapping[str, Any],
    build: Callable[[], dict[str, nn.Module]],
    train: Callable[[dict[str, nn.Module]], Mapping[str, Any]],
) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Named networks trained by ``train`` from ``recipe`` (seeded by ``recipe["seed"]``), cached.

    Returns the networks in eval mode and their metadata (recipe, hash, time, metrics).
    """
    stem = cache_dir() / "inversion" / f"{name}-{recipe_hash(recipe)}"
    weights, meta_path = stem.with_suffix(".pt"), stem.with_suffix(".json")
    if weights.is_file() and meta_path.is_file():
        modules = build()
        state = torch.load(weights, map_location="cpu", weights_only=True)
        for key, module in modules.items():
            module.load_state_dict(state[key])
        meta: dict[str, Any] = json.loads(meta_path.read_text())
    else:
        log.info("training %s (recipe %s)", name, recipe_hash(recipe))
        start = time.perf_counter()
        with torch.random.fork_rng():
            torch.manual_seed(int(recipe.get("seed", 0)))
            modules = build()
            metrics = dict(train(modules))
        meta = {
            "name": name,
            "recipe": dict(recipe),
            "recipe_hash": recipe_hash(recipe),
            "train_time_s": round(time.perf_counter() - start, 2),
            "torch": torch.__version__,
            **metrics,
        }
        buffer = io.BytesIO()
        torch.save({key: m.state_dict() for key, m in modules.items()}, buffer)
        atomic_write_bytes(weights, buffer.getvalue())
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1, default=str).encode())
    for module in modules.values():
        module.eval()
    return modules, meta


@dataclass(frozen=True)
class PriorRecipe:
    """Hyperparameters of the prior GAN (they key its cache).

    Args:
        setting: ``digits`` or ``orl``.
        steps: generator steps (each after ``n_critic`` critic steps).
        width: base channel count of both networks (smaller = faster, e.g. for tests).
        batch_size: images per step.
        lr: Adam learning rate of both networks.
        n_critic: critic steps per generator step (GMI: 5).
        gp_weight: gradient-penalty weight (GMI: 10).
        seed: seeds initialisation and sampling.
    """

    setting: str = "digits"
    steps: int = 1500
    width: int = 32
    batch_size: int = 64
    lr: float = 2e-4
    n_critic: int = 5
    gp_weight: float = 10.0
    seed: int = 0


def _layout(setting: InversionSetting) -> tuple[tuple[int, int], int]:
    """(start (h, w), number of 2x upsamplings) so that the generator ends at the image size."""
    _, h, w = setting.input_shape
    ups = 2 if h <= 16 else 3
    return (h >> ups, w >> ups), ups


def build_generator(setting: InversionSetting, width: int) -> nn.Sequential:
    """z (N, z_dim) -> image (N, C, H, W) in [0, 1]: linear, then 4x4 stride-2 transposed convs."""
    (h0, w0), ups = _layout(setting)
    chans = [width * 2 ** (ups - 1 - k) for k in range(ups)] + [setting.input_shape[0]]
    layers: list[nn.Module] = [
        nn.Linear(setting.z_dim, chans[0] * h0 * w0),
        nn.Unflatten(1, (chans[0], h0, w0)),
        nn.BatchNorm2d(chans[0]),
        nn.ReLU(),
    ]
    for k in range(ups):
        layers.append(nn.ConvTranspose2d(chans[k], chans[k + 1], 4, stride=2, padding=1))
        layers += [nn.BatchNorm2d(chans[k + 1]), nn.ReLU()] if k < ups - 1 else [nn.Sigmoid()]
    return nn.Sequential(*layers)


def build_critic(setting: InversionSetting, width: int) -> nn.Sequential:
    """image (N, C, H, W) -> critic score (N, 1): stride-2 convs with LeakyReLU, no normalisation."""
    (h0, w0), ups = _layout(setting)
    chans = [setting.input_shape[0]] + [width * 2**k for k in range(ups)]
    layers: list[nn.Module] = []
    for k in range(ups):
        layers += [nn.Conv2d(chans[k], chans[k + 1], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    layers += [nn.Flatten(), nn.Linear(chans[-1] * h0 * w0, 1)]
    return nn.Sequential(*layers)


def _gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    alpha = torch.rand(real.shape[0], 1, 1, 1)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def train_wgan_gp(modules: dict[str, nn.Module], recipe: PriorRecipe) -> dict[str, Any]:
    """Train ``modules["G"]``/``["D"]`` on the setting's public images (global RNG, seeded)."""
    setting = get_setting(recipe.setting)
    x_pub, idx = setting.public_data()
    setting.check_public_only(idx)
    gen, critic = modules["G"], modules["D"]
    opt_g = torch.optim.Adam(gen.parameters(), lr=recipe.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=recipe.lr, betas=(0.5, 0.999))
    gen.train()
    critic.train()
    d_loss = g_loss = torch.zeros(())
    for _ in range(recipe.steps):
        for _ in range(recipe.n_critic):
            real = x_pub[torch.randint(0, len(x_pub), (recipe.batch_size,))]
            with torch.no_grad():
                fake = gen(torch.randn(recipe.batch_size, setting.z_dim))
            gp = _gradient_penalty(critic, real, fake)
            d_loss = critic(fake).mean() - critic(real).mean() + recipe.gp_weight * gp
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        g_loss = -critic(gen(torch.randn(recipe.batch_size, setting.z_dim))).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return {
        "final_d_loss": float(d_loss.detach()),
        "final_g_loss": float(g_loss.detach()),
        "train_pool_indices": idx.tolist(),
    }


#: The benchmark's priors; attacks start from these and may override ``steps`` / ``width``.
DEFAULT_PRIORS: dict[str, PriorRecipe] = {
    "digits": PriorRecipe(setting="digits", steps=1000, width=32),
    "orl": PriorRecipe(setting="orl", steps=500, width=16),
}


@dataclass(frozen=True)
class GanPrior:
    """A trained prior: generator ``G`` (z -> image in [0, 1]) and critic ``D`` (image -> score)."""

    generator: nn.Module
    critic: nn.Module
    z_dim: int
    meta: Mapping[str, Any]


def load_prior(recipe: PriorRecipe) -> GanPrior:
    """The prior GAN of ``recipe``, trained on first use (seconds for digits) and cached."""
    setting = get_setting(recipe.setting)

    def build() -> dict[str, nn.Module]:
        return {
            "G": build_generator(setting, recipe.width),
            "D": build_critic(setting, recipe.width),
        }

    modules, meta = cached_modules(
        f"{setting.name}-prior-gan",
        {"kind": "wgan-gp", **asdict(recipe)},
        build,
        lambda m: train_wgan_gp(m, recipe),
    )
    for module in modules.values():
        module.requires_grad_(False)
    return GanPrior(modules["G"], modules["D"], setting.z_dim, meta)

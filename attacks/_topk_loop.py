"""The minimum-energy loop shared by the ordered top-K attacks (QuadAttack, CW^K, AD).

Following QuadAttacK's ``Unguided.attack`` (Paniagua et al. 2023), per sample and per
binary-search step: delta starts at N(0, 2e-3^2); each iteration does one forward pass, records
the lowest-l2 success, multiplies the sample's loss weight c by 0.75 when it succeeds, then
takes one AdamW step on ``c * task_loss + ||delta||_2^2`` and projects ``x + delta`` into the
threat set and the input bounds (the paper only clips to [0, 1]; here the threat's norm ball is
the hard budget, so pass a large eps for the paper's unconstrained setting). The optimiser is
re-created after ``warmup`` iterations (resets Adam's moments). After each run the CW-style
bisection moves c inside [0, c_upper]: a success lowers the upper end, a failure raises the
lower end. Budgets are written ``BxN``: B binary-search steps of N iterations.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import DataError, ParameterError, RobustbenchLiteError
from robustbench_lite.core.model import Model
from robustbench_lite.core.threat import ThreatModel, ordered_topk_holds
from robustbench_lite.core.types import Goal, Inputs, Norm

from ._topk_metrics import candidate_metrics

#: Given inputs x (n, ...) in the threat set, return logits (n, C) and the task loss (n,).
LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
_BUDGET = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


@dataclass(frozen=True)
class Budget:
    """``search_steps`` binary-search steps times ``iterations`` iterations each."""

    search_steps: int
    iterations: int


def parse_budget(text: str) -> Budget:
    """Parse ``"1x60"`` / ``"9x30"`` into a :class:`Budget`; else :class:`ParameterError`."""
    match = _BUDGET.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ParameterError(
            "budget",
            f"{text!r}: write it as BxN (binary-search steps x iterations, both >= 1), "
            "e.g. '1x60' or '9x30'",
        )
    return Budget(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class LoopSettings:
    """Hyperparameters of the loop (see the module docstring)."""

    budget: Budget
    lr: float
    c_upper: float
    warmup: int = 5
    init_std: float = 2e-3


def as_topk_targets(target: torch.Tensor | None) -> torch.Tensor:
    """Targets as (N, K): a targeted goal's (N,) becomes (N, 1)."""
    if target is None:
        raise RobustbenchLiteError("ordered top-K attacks need targets (goal targeted or top_k)")
    return target[:, None] if target.dim() == 1 else target


def _project_delta(
    threat: ThreatModel, x: torch.Tensor, delta: torch.Tensor, model: Model
) -> torch.Tensor:
    projected = threat.project(x, x + delta, model.bounds)
    assert isinstance(projected, torch.Tensor)
    return projected - x


def _one_run(
    model: Model,
    x: torch.Tensor,
    target: torch.Tensor,
    threat: ThreatModel,
    loss_fn: LossFn,
    c: torch.Tensor,
    settings: LoopSettings,
    generator: torch.Generator,
    best: torch.Tensor,
    best_l2: torch.Tensor,
) -> torch.Tensor:
    """One run of ``iterations`` steps; updates ``best``/``best_l2`` in place; returns run success."""
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype) * settings.init_std
    delta = _project_delta(threat, x, noise, model).requires_grad_(True)
    c = c.clone()
    succeeded = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    opt = torch.optim.AdamW([delta], lr=settings.lr)
    for it in range(settings.budget.iterations + 1):
        if it == settings.warmup:
            opt = torch.optim.AdamW([delta], lr=settings.lr)
        logits, task = loss_fn(x + delta)
        l2 = delta.flatten(1).norm(dim=1)
        with torch.no_grad():
            hit = ordered_topk_holds(logits.detach(), target)
            better = hit & (l2 <= best_l2)
            best[better] = (x + delta)[better].detach()
            best_l2[better] = l2[better].detach()
            c[better] *= 0.75
            succeeded |= hit
        if it == settings.budget.iterations:
            break
        opt.zero_grad()
        (c * task + l2.square()).sum().backward()
        opt.step()
        with torch.no_grad():
            delta.copy_(_project_delta(threat, x, delta.detach(), model))
    return succeeded


def minimum_energy_attack(
    model: Model,
    x: torch.Tensor,
    target: torch.Tensor,
    threat: ThreatModel,
    make_loss: Callable[[torch.Tensor, torch.Tensor], LossFn],
    settings: LoopSettings,
    generator: torch.Generator,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the loop on ``x`` (N, ...) with ordered targets (N, K).

    ``make_loss(x_chunk, target_chunk)`` builds the task loss of a chunk. Returns the
    lowest-l2 successful inputs (the clean input where none succeeded) and their l2 norms
    (inf where none succeeded).
    """
    best = x.detach().clone()
    best_l2 = torch.full((len(x),), float("inf"), device=x.device)
    for chunk in torch.arange(len(x), device=x.device).split(batch_size):
        xc, tc = x[chunk].detach(), target[chunk]
        loss_fn = make_loss(xc, tc)
        c_low = torch.zeros(len(chunk), device=x.device)
        c_up = torch.full((len(chunk),), settings.c_upper, device=x.device)
        c = (c_low + c_up) / 2
        bc, bl2 = best[chunk], best_l2[chunk]
        for _ in range(settings.budget.search_steps):
            ok = _one_run(model, xc, tc, threat, loss_fn, c, settings, generator, bc, bl2)
            c_up = torch.where(ok, torch.minimum(c_up, c), c_up)
            c_low = torch.where(ok, c_low, torch.maximum(c_low, c))
            c = (c_low + c_up) / 2
        best[chunk], best_l2[chunk] = bc, bl2
    return best, best_l2


TOPK_SUPPORTS = frozenset(
    (norm, goal)
    for norm in (Norm.L2, Norm.LINF, Norm.L1, Norm.NONE)
    for goal in (Goal.TOP_K, Goal.TARGETED)
)


@dataclass(frozen=True)
class MinimumEnergyTopK(Attack):
    """Base of the ordered top-K attacks: the shared loop, budget parsing and metrics.

    Args:
        budget: ``"BxN"``, binary-search steps x iterations (paper protocols 1x60, 9x30).
        lr: AdamW learning rate on delta, in input units per step (the paper tunes it per
            method, K and budget; 0.03 suits 8x8 digits, 0.1 the 56x46 ORL faces).
        c_upper: upper end of the bisection interval of the task-loss weight c (starts at half).
        batch_size: samples optimised together.

    Threats: ``none:top_k:K`` is the paper's unconstrained minimum-energy setting (inputs only
    clipped to the model's bounds); with ``l2``/``linf``/``l1`` the eps-ball is a hard budget
    (delta is projected onto it each step). ``targeted`` threats are the K = 1 case.
    """

    supports = TOPK_SUPPORTS
    quick_params = {"budget": "1x10"}
    #: reports carry l1 / l2 / linf means and medians over re-checked successes (the paper's)
    size_norms = ("l1", "l2", "linf")
    metric_names = ("l1_mean", "l1_median", "l2_mean", "l2_median", "linf_mean", "linf_median")
    budget: str = "1x60"
    lr: float = 0.03
    c_upper: float = 20.0
    batch_size: int = 256

    def __post_init__(self) -> None:
        parse_budget(self.budget)
        if not self.lr > 0:
            raise ParameterError("lr", f"{self.lr} must be > 0, e.g. 0.03")
        if not self.c_upper > 0:
            raise ParameterError("c_upper", f"{self.c_upper} must be > 0, e.g. 20")
        if self.batch_size < 1:
            raise ParameterError("batch_size", f"{self.batch_size} must be >= 1")

    @abstractmethod
    def make_loss(
        self, model: Model, x: torch.Tensor, target: torch.Tensor, stats: dict[str, Any]
    ) -> LossFn:
        """The task loss of one chunk ``x`` (n, ...) with ordered targets (n, K)."""

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
        if not isinstance(x, torch.Tensor):
            raise DataError(f"{self.name} attacks tensor inputs only, got {type(x).__name__}")
        targets = as_topk_targets(target)
        settings = LoopSettings(budget=parse_budget(self.budget), lr=self.lr, c_upper=self.c_upper)
        stats: dict[str, Any] = {}
        best, best_l2 = minimum_energy_attack(
            model,
            x,
            targets,
            threat,
            lambda xc, tc: self.make_loss(model, xc, tc, stats),
            settings,
            generator,
            self.batch_size,
        )
        metrics = candidate_metrics(x, best, torch.isfinite(best_l2))
        metrics.update(stats)
        return AttackOutput(best, metrics=metrics)

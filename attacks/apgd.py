"""Auto-PGD (Croce & Hein 2020, arXiv 2003.01690): APGD-CE, APGD-DLR and APGD-T, linf and l2.

APGD is PGD with momentum 0.75 and a step size that starts at ``2 * eps`` and is halved at
checkpoints (after 22% of the steps, then at shrinking intervals down to 6%) for every sample
whose loss oscillated (increased in at most ``rho`` of the steps since the last checkpoint) or
did not improve since the previous checkpoint without a halving there; a halved sample restarts
from its best point. ``apgd_t`` runs the targeted DLR loss against each of the ``n_targets``
classes with the highest clean logits (AutoAttack's APGD-T).

Deviations from the reference implementation, none of which changes the iterates of a sample
that is still robust: samples are dropped from the batch at checkpoints once they are broken
(AutoAttack keeps running them), restarts and targets are batched (``parallel`` jobs at once)
instead of run one after the other, and the oscillation count compares each loss with the
previous step's loss inside the current checkpoint interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import ParameterError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm, require_tensor

from ._losses import LOSSES

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
_SUPPORTS = frozenset(
    (n, g) for n in (Norm.LINF, Norm.L2) for g in (Goal.UNTARGETED, Goal.TARGETED)
)


def _rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _unit(v: torch.Tensor, norm: Norm) -> torch.Tensor:
    """``v`` scaled to unit ``norm`` per sample (AutoAttack's ``normalize``)."""
    flat = v.flatten(1)
    size = flat.abs().amax(dim=1) if norm is Norm.LINF else flat.norm(dim=1)
    return v / _rows(size + 1e-12, v)


def apgd_start(x: torch.Tensor, norm: Norm, eps: float, generator: torch.Generator) -> torch.Tensor:
    """AutoAttack's random start: a random direction scaled to norm ``eps`` (not yet clipped)."""
    if norm is Norm.LINF:
        u = 2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1
    else:
        u = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + eps * _unit(u.to(x.device), norm)


def _loss_grad(
    model: Model, x_adv: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, loss_fn: LossFn
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-sample loss (N,), its input gradient, logits of the real model (N, C)).

    For a randomized model the logits are those of its gradient view (e.g. averaged over EOT
    draws): one random pass of the real model would let a lucky draw stop the attack early.
    """
    x_in = x_adv.detach().requires_grad_(True)
    logits = model.differentiable(x_in)
    loss = loss_fn(logits, y, t)
    (grad,) = torch.autograd.grad(loss.sum(), x_in)
    if model.surrogate is not None and not model.randomized:
        with torch.no_grad():
            logits = model(x_adv)
    return loss.detach(), grad.detach(), logits.detach()


def _step(
    s: dict[str, torch.Tensor], threat: ThreatModel, model: Model, first: bool
) -> torch.Tensor:
    """One APGD update with momentum: z = P(x + eta*dir(g)); x' = P(x + a(z - x) + (1-a)(x - x_old))."""
    a = 1.0 if first else 0.75
    x0, x_adv = s["x"], s["x_adv"]
    direction = s["grad"].sign() if threat.norm is Norm.LINF else _unit(s["grad"], Norm.L2)
    z = threat.project(x0, x_adv + _rows(s["step"], x_adv) * direction, model.bounds)
    assert isinstance(z, torch.Tensor)
    moved = x_adv + a * (z - x_adv) + (1 - a) * (x_adv - s["x_old"])
    out = threat.project(x0, moved, model.bounds)
    assert isinstance(out, torch.Tensor)
    return out


def apgd_batch(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor | None,
    threat: ThreatModel,
    loss_fn: LossFn,
    steps: int,
    rho: float,
    generator: torch.Generator,
    owner: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD run on a batch; success follows ``threat``'s goal (``t`` drives the loss).

    ``owner`` (N,) long: rows with the same owner are copies of one sample (restarts, targets);
    once one copy breaks it, the other copies stop too. Returns (x_adv (N, ...), success (N,)
    bool, loss-did-not-increase (N,) bool). Broken rows leave the working batch at the next
    checkpoint, or as soon as an eighth of the working rows is broken.
    """
    n = len(y)
    out, success = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    stalled = torch.zeros(n, dtype=torch.bool, device=x.device)
    x_adv = threat.project(x, apgd_start(x, threat.norm, threat.eps, generator), model.bounds)
    assert isinstance(x_adv, torch.Tensor)
    loss, grad, logits = _loss_grad(model, x_adv, y, t, loss_fn)
    s: dict[str, torch.Tensor] = {
        "i": torch.arange(n, device=x.device),
        "x": x,
        "y": y,
        "x_adv": x_adv,
        "x_old": x_adv,
        "grad": grad,
        "x_best": x_adv,
        "grad_best": grad,
        "loss_best": loss,
        "loss_prev": loss,
        "loss_first": loss,
        "loss_last_check": loss,
        "n_incr": torch.zeros_like(loss),
        "step": torch.full_like(loss, 2.0 * threat.eps),
        "done": torch.zeros_like(success),
        "reduced_last": torch.ones_like(success),
        "owner": owner if owner is not None else torch.arange(n, device=x.device),
    }
    if t is not None:
        s["t"] = t
    _record(s, out, success, threat.is_success(logits, y, t), x_adv)
    interval, since_check = max(int(0.22 * steps), 1), 0
    size_decr, interval_min = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    for i in range(steps):
        with torch.no_grad():
            x_new = _step(s, threat, model, first=i == 0)
        s["x_old"], s["x_adv"] = s["x_adv"], x_new
        loss, s["grad"], logits = _loss_grad(model, x_new, s["y"], s.get("t"), loss_fn)
        _record(s, out, success, threat.is_success(logits, s["y"], s.get("t")), x_new)
        with torch.no_grad():
            s["n_incr"] = s["n_incr"] + (loss > s["loss_prev"]).to(loss.dtype)
            s["loss_prev"] = loss
            better = loss > s["loss_best"]
            s["x_best"] = torch.where(_rows(better, x_new), x_new, s["x_best"])
            s["grad_best"] = torch.where(_rows(better, x_new), s["grad"], s["grad_best"])
            s["loss_best"] = torch.where(better, loss, s["loss_best"])
        since_check += 1
        if since_check == interval and i < steps - 1:
            _checkpoint(s, interval, rho)
            interval, since_check = max(interval - size_decr, interval_min), 0
            s = _compact(s)
        elif int(s["done"].sum()) * 8 >= len(s["i"]):
            s = _compact(s)
        if not len(s["i"]):
            break
    stalled[s["i"]] = (s["loss_best"] <= s["loss_first"]) & ~s["done"]
    return out, success, stalled


def _record(
    s: dict[str, torch.Tensor],
    out: torch.Tensor,
    success: torch.Tensor,
    hit: torch.Tensor,
    x_adv: torch.Tensor,
) -> None:
    """Store the first successful point of every newly broken working row."""
    new = hit & ~s["done"]
    if new.any():
        out[s["i"][new]] = x_adv[new].detach()
        success[s["i"][new]] = True
        s["done"] = s["done"] | new


def _compact(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop working rows that are broken, or whose sample another copy has broken."""
    owner = s["owner"]
    gone = torch.zeros(
        int(owner.max()) + 1 if len(owner) else 0, dtype=torch.bool, device=owner.device
    )
    gone[owner[s["done"]]] = True
    keep = ~gone[owner]
    return {k: v[keep] for k, v in s.items()}


def _checkpoint(s: dict[str, torch.Tensor], interval: int, rho: float) -> None:
    """Halve the step of oscillating / stuck rows and move them back to their best point."""
    oscillating = s["n_incr"] <= interval * rho
    stuck = ~s["reduced_last"] & (s["loss_last_check"] >= s["loss_best"])
    reduce = oscillating | stuck
    s["reduced_last"], s["loss_last_check"] = reduce, s["loss_best"]
    s["step"] = torch.where(reduce, s["step"] / 2, s["step"])
    s["x_adv"] = torch.where(_rows(reduce, s["x_adv"]), s["x_best"], s["x_adv"])
    s["grad"] = torch.where(_rows(reduce, s["grad"]), s["grad_best"], s["grad"])
    s["n_incr"] = torch.zeros_like(s["n_incr"])


@dataclass(frozen=True)
class _APGD(Attack):
    """Shared driver: jobs (restarts x targets) batched ``parallel`` at a time on robust samples."""

    supports = _SUPPORTS
    quick_params = {"steps": 10}
    loss: ClassVar[str] = "ce"
    steps: int = 100
    restarts: int = 1
    rho: float = 0.75
    parallel: int = 3
    batch_size: int = 4096

    def __post_init__(self) -> None:
        for param, value in (
            ("steps", self.steps),
            ("restarts", self.restarts),
            ("parallel", self.parallel),
            ("batch_size", self.batch_size),
        ):
            if value < 1:
                raise ParameterError(param, f"{value} must be >= 1")
        if not 0.0 < self.rho < 1.0:
            raise ParameterError("rho", f"{self.rho} must lie in (0, 1), e.g. 0.75")

    def _targets(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        target: torch.Tensor | None,
    ) -> list[torch.Tensor | None]:
        """The loss target of each job (one per restart here)."""
        return [target] * self.restarts

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
        x = require_tensor(x, self.name)
        loss_fn = LOSSES[self.loss]
        best, broken = x.detach().clone(), torch.zeros(len(y), dtype=torch.bool, device=x.device)
        stalled = torch.ones(len(y), dtype=torch.bool, device=x.device)
        jobs = self._targets(model, x, y, threat, target)
        for g in range(0, len(jobs), self.parallel):
            todo = (~broken).nonzero()[:, 0]
            if not len(todo):
                break
            group = jobs[g : g + self.parallel]
            xs, ys = x[todo].repeat(len(group), *([1] * (x.dim() - 1))), y[todo].repeat(len(group))
            ts = None if group[0] is None else torch.cat([t[todo] for t in group if t is not None])
            owner = torch.arange(len(todo), device=x.device).repeat(len(group))
            adv, hit, stall = self._batched(model, xs, ys, ts, owner, threat, loss_fn, generator)
            hit = hit.view(len(group), -1)
            first = hit.float().argmax(dim=0)  # the first job that broke each sample
            pick = first * len(todo) + torch.arange(len(todo), device=x.device)
            got = hit.any(dim=0)
            best[todo[got]] = adv[pick[got]]
            broken[todo] |= got
            stalled[todo] &= stall.view(len(group), -1).all(dim=0) & ~got
        return AttackOutput(best, metrics={"loss_not_increased": float(stalled.float().mean())})

    def _batched(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor | None,
        owner: torch.Tensor,
        threat: ThreatModel,
        loss_fn: LossFn,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        parts = []
        for rows in torch.arange(len(y), device=x.device).split(self.batch_size):
            tt = t[rows] if t is not None else None
            parts.append(
                apgd_batch(
                    model,
                    x[rows],
                    y[rows],
                    tt,
                    threat,
                    loss_fn,
                    self.steps,
                    self.rho,
                    generator,
                    owner[rows],
                )
            )
        return tuple(torch.cat(p) for p in zip(*parts))  # type: ignore[return-value]


@register_attack("apgd_ce")
@dataclass(frozen=True)
class APGDCE(_APGD):
    """APGD on the cross-entropy loss (targeted goals: minus the CE of the target).

    Croce & Hein 2020, arXiv 2003.01690. Parameter-free apart from the budget.

    Args:
        steps: iterations per restart (AutoAttack: 100).
        restarts: independent random starts; samples broken by one are not attacked again.
        rho: oscillation threshold of the step-size halving rule (0.75).
        parallel: restarts run side by side in one batch.
        batch_size: rows (samples x parallel jobs) per forward/backward pass.

    Shape: x (N, ...) in the model's bounds; y (N,); targets (N,) for targeted goals.

    Example::

        result = rbl.create_attack("apgd_ce")(model, x, y, "linf:0.1")
    """

    loss: ClassVar[str] = "ce"


@register_attack("apgd_dlr")
@dataclass(frozen=True)
class APGDDLR(_APGD):
    """APGD on the difference-of-logits-ratio loss (scale invariant; targeted DLR for targets).

    Same arguments as ``apgd_ce``; needs at least 3 classes (4 for targeted goals to be exact).
    """

    loss: ClassVar[str] = "dlr"


@register_attack("apgd_t")
@dataclass(frozen=True)
class APGDT(_APGD):
    """APGD-T: targeted DLR against each of the ``n_targets`` most likely wrong classes.

    Untargeted goals: the sample counts as broken when any target run misclassifies it, as in
    AutoAttack's APGD-T (9 targets, 100 steps, 1 restart in its "standard" version). Targeted
    goals: the targeted DLR loss against the given target only.

    Args:
        n_targets: number of highest-logit wrong classes tried (capped at classes - 1).
        steps, restarts, rho, parallel, batch_size: as for ``apgd_ce``.

    Shape: x (N, ...) in the model's bounds; y (N,); targets (N,) for targeted goals.
    """

    quick_params = {"steps": 10, "n_targets": 2}
    loss: ClassVar[str] = "dlr"
    n_targets: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_targets < 1:
            raise ParameterError("n_targets", f"{self.n_targets} must be >= 1")

    def _targets(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        target: torch.Tensor | None,
    ) -> list[torch.Tensor | None]:
        if threat.goal is Goal.TARGETED:
            return [target] * self.restarts
        with torch.no_grad():
            logits = model(x)
        k = min(self.n_targets, logits.shape[1] - 1)
        ranked = logits.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
        return [ranked[:, r] for r in range(k) for _ in range(self.restarts)]

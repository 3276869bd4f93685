"""MI-Face: model inversion by gradient descent in input space (Fredrikson, Jha, Ristenpart,
CCS 2015, doi:10.1145/2810103.2813677).

Threat ``none:targeted``: white-box access to the target classifier and the class to invert.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import ParameterError, UnsupportedThreatError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm
from robustbench_lite.zoo.inversion_setting import setting_for_model

from ._inversion_eval import evaluate_reconstructions, load_evaluator


@register_attack("mi_face")
@dataclass(frozen=True)
class MIFace(Attack):
    """Gradient descent on the cost c(x) = 1 - p_target(x), from the given start images.

    ``x_{i} = clip(x_{i-1} - lr * grad c(x_{i-1}))``; a sample stops when ``i = max_iter``
    (alpha), when ``c(x_i) >= max(c(x_{i-1}), ..., c(x_{i-patience}))`` (beta: no improvement
    over the last ``patience`` steps), or when ``p_target >= gamma``; the lowest-cost iterate is
    returned. Paper values: alpha 5000, beta 100, gamma 0.99, lambda 0.1. The cost uses raw
    probabilities, not their log, as in the paper.

    Deviations: (1) the paper's ``c(x) <= gamma`` with gamma = 0.99 would stop as soon as
    p >= 0.01; like ART's ``MIFace`` we read gamma as a *confidence* threshold. (2) ``Process``
    is the identity: the paper used a denoising step only for its stacked denoising-autoencoder
    target, which is not one of ours; iterates are clipped to the input bounds. (3) ``restarts``
    > 1 starts the extra runs from uniform noise (drawn from ``generator``); the lowest-cost run
    wins. Privacy scores come from the setting's evaluation classifier, never from the target.

    Args:
        setting: ``digits`` / ``orl``, or None to pick the one matching the model's shape.
        max_iter: alpha, the iteration cap.
        patience: beta, the no-improvement window in steps.
        gamma: stop once the target probability reaches this.
        lr: lambda, the step size in input units per unit gradient.
        restarts: runs per sample (the first from ``x``).

    Shape: x (N, C, H, W) start images in bounds (the paper's x0 = 0: pass zeros); target (N,)
    private classes to reconstruct; y (N,) is only used by the base class's clean-accuracy
    bookkeeping (pass y = target). ``x_adv`` are the reconstructions.

    Example::

        x0 = torch.zeros(5, 1, 8, 8); t = torch.arange(5)
        res = rbl.create_attack("mi_face")(target_model, x0, t, "none:targeted", target=t)
        res.metrics["eval_top1"]
    """

    supports = frozenset({(Norm.NONE, Goal.TARGETED)})
    quick_params = {"max_iter": 200, "patience": 20}
    #: privacy scores of the evaluation classifier (``invert:`` checks add ``target_top1``)
    metric_names = ("eval_top1", "eval_top5", "knn_dist")
    setting: str | None = None
    max_iter: int = 5000
    patience: int = 100
    gamma: float = 0.99
    lr: float = 0.1
    restarts: int = 1

    def __post_init__(self) -> None:
        for param, value in (
            ("max_iter", self.max_iter),
            ("patience", self.patience),
            ("restarts", self.restarts),
        ):
            if value < 1:
                raise ParameterError(param, f"{value} must be >= 1")
        if self.lr <= 0:
            raise ParameterError("lr", f"{self.lr} must be > 0, e.g. 0.1")

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
        if not isinstance(x, torch.Tensor) or target is None:
            raise UnsupportedThreatError("mi_face needs tensor start images x and target classes")
        setting = setting_for_model(model, self.setting)
        lo, hi = model.bounds
        n, r = len(target), self.restarts
        noise = lo + (hi - lo) * torch.rand((r - 1, *x.shape), generator=generator)
        starts = torch.cat([x.detach()[None], noise.to(x)]).reshape(r * n, *x.shape[1:])
        runs_x, runs_c, iters = self._descend(model, starts, target.repeat(r))  # row k * n + i
        best = runs_c.reshape(r, n).argmin(dim=0)
        best_x = runs_x.reshape(r, n, *x.shape[1:])[best, torch.arange(n)]
        best_c = runs_c.reshape(r, n)[best, torch.arange(n)]
        metrics = evaluate_reconstructions(model, load_evaluator(setting), best_x, target, setting)
        metrics["mean_cost"] = float(best_c.mean())
        metrics["mean_iterations"] = float(iters.float().mean())
        return AttackOutput(best_x, metrics=metrics)

    def _descend(
        self, model: Model, x: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One run per row; returns (lowest-cost iterate (N, ...), its cost (N,), steps taken (N,)).

        Only rows still running are evaluated; each row's history holds its last ``patience`` costs.
        """
        net, (lo, hi) = model.differentiable, model.bounds
        n = len(target)
        cur = x.detach().clone()
        best_x, best_c = cur.clone(), torch.full((n,), float("inf"), device=x.device)
        history = torch.full((n, self.patience), float("inf"), device=x.device)
        active = torch.arange(n, device=x.device)
        steps = torch.zeros(n, dtype=torch.int64)
        for i in range(self.max_iter + 1):
            xa = cur[active].requires_grad_(True)
            prob = torch.softmax(net(xa), dim=1).gather(1, target[active, None])[:, 0]
            cost = 1.0 - prob
            (grad,) = torch.autograd.grad(cost.sum(), xa)
            cost = cost.detach()
            improved = cost < best_c[active]
            best_x[active[improved]], best_c[active[improved]] = (
                xa.detach()[improved],
                cost[improved],
            )
            stalled = (
                cost >= history[active].amax(dim=1)
                if i >= self.patience
                else torch.zeros_like(improved)
            )
            history[active] = torch.cat([history[active, 1:], cost[:, None]], dim=1)
            keep = ~stalled & (prob.detach() < self.gamma)
            if i == self.max_iter or not keep.any():
                break
            active, xa, grad = active[keep], xa.detach()[keep], grad[keep]
            steps[active.cpu()] += 1
            cur[active] = (xa - self.lr * grad).clamp(lo, hi)
        return best_x, best_c, steps

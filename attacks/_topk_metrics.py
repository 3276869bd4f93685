"""Ordered top-K metrics: success rate plus l1 / l2 / linf of perturbations over successes only.

The norms are averaged over successful samples only (as in the QuadAttacK paper), so an attack
with a low success rate can look cheaper: always read them together with the success rate.
"""

from __future__ import annotations

import math

import torch

from robustbench_lite.core.attack import AttackResult


def perturbation_norms(
    x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """Mean l1, l2 and linf of ``x_adv - x`` (N, ...) over the rows where ``mask`` (N,) is True.

    Returns NaN means when no row is selected.
    """
    delta = (x_adv.detach() - x.detach()).flatten(1).double()[mask.to(x.device)]
    if delta.shape[0] == 0:
        return {"mean_l1": math.nan, "mean_l2": math.nan, "mean_linf": math.nan}
    return {
        "mean_l1": float(delta.abs().sum(dim=1).mean()),
        "mean_l2": float(delta.norm(dim=1).mean()),
        "mean_linf": float(delta.abs().amax(dim=1).mean()),
    }


def topk_metrics(x: torch.Tensor, result: AttackResult) -> dict[str, float]:
    """ASR and perturbation norms of a re-checked result on clean inputs ``x`` (N, ...).

    ``asr`` is the fraction of clean-correct samples whose re-checked adversarial input has the
    exact ordered top-K; ``mean_l1``/``mean_l2``/``mean_linf`` average over those successes;
    ``n_success`` and ``n_clean_correct`` are counts.
    """
    assert isinstance(result.x_adv, torch.Tensor)
    ok = result.success & result.clean_correct
    out = {
        "asr": result.success_rate,
        "n_success": float(ok.sum()),
        "n_clean_correct": float(result.clean_correct.sum()),
    }
    out.update(perturbation_norms(x, result.x_adv, ok))
    return out


def candidate_metrics(x: torch.Tensor, best: torch.Tensor, found: torch.Tensor) -> dict[str, float]:
    """The attack's own view (before the base class re-checks): ``candidate_*`` keys."""
    norms = perturbation_norms(x, best, found)
    out = {f"candidate_{key}": value for key, value in norms.items()}
    out["candidate_success_rate"] = float(found.double().mean()) if len(found) else math.nan
    return out

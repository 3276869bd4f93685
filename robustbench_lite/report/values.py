"""Report values: the one place that turns results into the numbers a report shows.

The suite's check kinds merge per-sample vectors from many cells and call the vector
functions below; the CLI and the pytest fixture hold one result object and call
:func:`result_values`. Either way the same function computes each number, so a check gives the
same values whichever face ran it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from robustbench_lite.core.attack import (
    AttackResult,
    clean_accuracy,
    robust_accuracy,
    success_rate,
)
from robustbench_lite.core.defense import Detection
from robustbench_lite.core.types import Status
from robustbench_lite.core.verifier import VerificationResult, status_fraction

#: Every value name the functions below produce: what expectations and ``--compare-fail``
#: may name besides a component's own ``metric_names``.
REPORT_METRICS: tuple[str, ...] = (
    "clean_accuracy",
    "robust_accuracy",
    "success_rate",
    "queries",
    "verified_fraction",
    "falsified_fraction",
    "unknown_fraction",
    "soundness_violations",
    "flagged",
    "score",
)


def clean_values(clean_correct: Sequence[bool]) -> dict[str, Any]:
    """``clean_accuracy`` of per-sample correctness (N,)."""
    return {"clean_accuracy": clean_accuracy(torch.tensor(clean_correct, dtype=torch.bool))}


def attack_values(
    clean_correct: Sequence[bool],
    success: Sequence[bool],
    *,
    queries: float | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Accuracies and success rate of per-sample vectors (N,), mean ``queries`` per sample when
    the attack counts them, and the attack's own numeric metrics (non-numbers are dropped)."""
    cc = torch.tensor(clean_correct, dtype=torch.bool)
    ok = torch.tensor(success, dtype=torch.bool)
    out: dict[str, Any] = {
        "clean_accuracy": clean_accuracy(cc),
        "robust_accuracy": robust_accuracy(cc, ok),
        "success_rate": success_rate(cc, ok),
    }
    if queries is not None:
        out["queries"] = queries
    out.update(numeric(metrics or {}))
    return out


def verify_values(statuses: Sequence[Status | str]) -> dict[str, Any]:
    """Verified, falsified and unknown fractions of per-sample verdicts (N,)."""
    verdicts = [Status(s) for s in statuses]
    return {
        "verified_fraction": status_fraction(verdicts, Status.VERIFIED),
        "falsified_fraction": status_fraction(verdicts, Status.FALSIFIED),
        "unknown_fraction": status_fraction(verdicts, Status.UNKNOWN),
    }


def detect_values(flagged: bool, score: float) -> dict[str, Any]:
    """A detector's verdict and score."""
    return {"flagged": bool(flagged), "score": float(score)}


def result_values(result: AttackResult | VerificationResult | Detection) -> dict[str, Any]:
    """The report values of one attack, verifier or detector result."""
    if isinstance(result, AttackResult):
        return attack_values(
            result.clean_correct.tolist(),
            result.success.tolist(),
            queries=result.queries,
            metrics=result.metrics,
        )
    if isinstance(result, VerificationResult):
        return verify_values(result.per_sample)
    return detect_values(result.flagged, result.score)


def numeric(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``metrics`` that are numbers or flags (the rest is detail, not values)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool))}

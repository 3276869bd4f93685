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
from robustbench_lite.report.adaptive_values import text_values
from robustbench_lite.report.certified import smoothing_stats_values
from robustbench_lite.report.size_values import size_values
from robustbench_lite.report.snn_values import label_values

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
    sizes: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Accuracies and success rate of per-sample vectors (N,), mean ``queries`` per sample when
    the attack counts them, the attack's own numeric metrics (non-numbers are dropped) and the
    perturbation ``sizes`` (norm -> (N,)) over successes (:mod:`report.size_values`)."""
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
    out.update(size_values(cc.tolist(), ok.tolist(), sizes or {}))
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
            sizes={k: v.tolist() for k, v in result.sizes.items()},
        )
    if isinstance(result, VerificationResult):
        values = verify_values(result.per_sample)
        return values | smoothing_stats_values(result.stats, values["verified_fraction"])
    return detect_values(result.flagged, result.score)


def numeric(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``metrics`` that are numbers or flags, the short labels of
    :mod:`report.snn_values` and the adaptive-attack texts of :mod:`report.adaptive_values`
    (the rest is detail, not values)."""
    labels = label_values(metrics) | text_values(metrics)
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool)) or k in labels}


def fusion_cell(
    model: Any, x: Any, result: AttackResult, modality: str | None, *, examples: bool = False
) -> dict[str, Any] | None:
    """Per-sample fusion-detector records of one attack on mapping inputs
    (:mod:`robustbench_lite.report.fusion_values`), with camera examples when ``examples``;
    None unless ``x`` and ``model`` are a fusion detector's inputs and detection view."""
    from robustbench_lite.report import fusion_values as fv

    if not fv.is_fusion(model, x) or isinstance(result.x_adv, torch.Tensor):
        return None
    out = fv.cell_records(model, x, result.x_adv, result.metrics, modality)
    if examples:
        out["examples"] = fv.example_arrays(x, result.x_adv, result.metrics, modality, out)
    return out


def fusion_merge(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fusion values of all cells' :func:`fusion_cell` records, in sample order."""
    from robustbench_lite.report.fusion_values import merge_records

    return merge_records(records)


def detail_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` without the large tensors the fusion records consume (heatmaps, cameras)."""
    from robustbench_lite.report.fusion_values import TENSOR_METRICS

    return {k: v for k, v in metrics.items() if k not in TENSOR_METRICS}

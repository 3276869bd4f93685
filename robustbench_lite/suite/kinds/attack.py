"""The attack check: robust accuracy under a threat (``attack: pgd``, ``threat: linf-8``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import ATTACKS, Registry, create_attack
from robustbench_lite.core.types import Inputs, inputs_to
from robustbench_lite.report.model import jsonable
from robustbench_lite.report.scaling_inputs import check_scaling, per_sample_scaling
from robustbench_lite.report.values import (
    attack_values,
    detail_metrics,
    fusion_cell,
    fusion_merge,
    numeric,
)
from robustbench_lite.suite.cells import Cell, CellContext, cell_seed
from robustbench_lite.suite.kinds.base import CellPayload, CheckKind, flat, register_kind
from robustbench_lite.suite.model_spec import Check

#: Clean/adversarial example pairs kept per attack check (first shard only), for reports.
EXAMPLES = 8
#: Largest sample (in values) whose examples are kept in the report.
EXAMPLE_MAX_VALUES = 4096


@register_kind
class AttackKind(CheckKind):
    """An attack under a threat; success is re-checked by the Attack base class."""

    name = "attack"
    position = 1
    component_key = "attack"
    takes_threat = True
    reports_breaks = True
    metrics = ("clean_accuracy", "robust_accuracy", "success_rate", "queries")
    example_expect = 'robust_accuracy: ">= 0.4"'

    def components(self) -> Registry[Any]:
        return ATTACKS

    def run_cell(
        self,
        ctx: CellContext,
        check: Check,
        cell: Cell,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
    ) -> dict[str, Any]:
        assert check.component is not None and check.threat is not None
        attack = create_attack(check.component, **check.param_dict)
        gen = torch.Generator().manual_seed(cell_seed(ctx.seed, check.id, cell.shard))
        x = inputs_to(x, model.device)
        r = attack(model, x, y.to(model.device), check.threat, generator=gen)
        metrics = numeric(r.metrics)
        fusion = fusion_cell(model, x, r, check.threat.modality, examples=cell.shard == 0)
        out: dict[str, Any] = {
            "clean_correct": r.clean_correct.tolist(),
            "success": r.success.tolist(),
            "adv_pred": r.adv_pred.tolist() if r.adv_pred is not None else None,
            "queries": r.queries,
            "metrics": metrics,
            "sizes": {k: v.tolist() for k, v in r.sizes.items()},
            "other_metrics": {
                k: jsonable(v) for k, v in detail_metrics(r.metrics).items() if k not in metrics
            },
        }
        if fusion is not None:  # a fusion detector: scored as benchmarks/fusion_patch.py does
            out["fusion"] = fusion
        # robustness-scaling inputs (report/scaling.py): loss at x_adv, boundary-tilting angles
        out.update(per_sample_scaling(model, x, y, r, check.threat, ctx.x, ctx.y))
        if (
            cell.shard == 0
            and isinstance(r.x_adv, torch.Tensor)
            and isinstance(x, torch.Tensor)
            and x[0].numel() <= EXAMPLE_MAX_VALUES
        ):
            k = min(EXAMPLES, len(y))
            out["examples"] = {
                "shape": list(x.shape[1:]),
                "y": y[:k].tolist(),
                "x": _rounded(x[:k]),
                "x_adv": _rounded(r.x_adv[:k].cpu()),
                "adv_pred": r.adv_pred[:k].tolist() if r.adv_pred is not None else None,
                "success": r.success[:k].tolist(),
            }
        return out

    def cell_values(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        values = attack_values(payload["clean_correct"], payload["success"])
        return {k: values[k] for k in ("clean_accuracy", "robust_accuracy")}

    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        ok = flat(cells, "success")
        sizes = [c.stop - c.start for c, _ in cells]
        per_cell = [p.get("queries") for _, p in cells]
        queries = None
        if all(q is not None for q in per_cell):
            queries = sum(float(q or 0) * s for q, s in zip(per_cell, sizes)) / sum(sizes)
        metrics: dict[str, Any] = {}
        extra: dict[str, Any] = {"success": [bool(s) for s in ok]}
        for key in sorted({k for _, p in cells for k in p.get("metrics", {})}):
            pairs = [
                (p["metrics"][key], s)
                for (_, p), s in zip(cells, sizes)
                if key in p.get("metrics", {})
            ]
            if is_timing(key):  # wall times vary run to run: detail, not values
                extra.setdefault("timing", {})[key] = merge_metric(key, pairs)
            else:
                metrics[key] = merge_metric(key, pairs)
        norms = set.intersection(*(set(p.get("sizes", {})) for _, p in cells)) if cells else set()
        by_norm = {k: [v for _, p in cells for v in p["sizes"][k]] for k in sorted(norms)}
        values = attack_values(
            flat(cells, "clean_correct"), ok, queries=queries, metrics=metrics, sizes=by_norm
        )
        if by_norm:  # per sample, beside ``success``: what <norm>_mean averages
            extra["sizes"] = by_norm
        fusion = [p["fusion"] for _, p in cells if "fusion" in p]
        if fusion and len(fusion) == len(cells):
            values.update(fusion_merge(fusion))
            extra["fusion_examples"] = fusion[0].get("examples")
        for _, p in cells:
            if "examples" in p:
                extra["examples"] = p["examples"]
        others = [p["other_metrics"] for _, p in cells if p.get("other_metrics")]
        if others:
            extra["metrics_per_cell"] = others
        if cells and all("adv_loss" in p for _, p in cells):
            tilts = flat(cells, "tilt_deg") if all("tilt_deg" in p for _, p in cells) else None
            extra["scaling"] = check_scaling(
                flat(cells, "adv_loss"), tilts, cells[0][1].get("eps_limit")
            )
        return values, extra


def is_timing(key: str) -> bool:
    """Metric names that are wall times (``seconds_*``, ``*_s``, ``*elapsed*``)."""
    return key.startswith("seconds") or key.endswith("_s") or "elapsed" in key


def merge_metric(key: str, pairs: list[tuple[Any, int]]) -> Any:
    """One attack metric over cells, from ``(value, cell size)`` pairs: flags -> any, labels ->
    the distinct ones, counts and ``seconds*`` -> sum, else the mean weighted by cell size
    (fractions such as ``loss_not_increased``)."""
    vals = [v for v, _ in pairs]
    if all(isinstance(v, bool) for v in vals):
        return any(vals)
    if any(isinstance(v, str) for v in vals):  # labels (``surrogate``): the distinct ones
        return ", ".join(sorted({str(v) for v in vals}))
    if key.startswith("seconds") or all(isinstance(v, int) for v in vals):
        return sum(vals)
    return sum(float(v) * s for v, s in pairs) / sum(s for _, s in pairs)


def _rounded(t: torch.Tensor) -> list[Any]:
    return torch.round(t.detach().float() * 10000).div(10000).tolist()

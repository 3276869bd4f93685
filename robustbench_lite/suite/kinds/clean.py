"""The clean check: accuracy on unperturbed samples (``- id: clean``, no component)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from robustbench_lite.core.attack import judged_clean
from robustbench_lite.core.model import Model
from robustbench_lite.core.types import Inputs
from robustbench_lite.report.values import clean_values
from robustbench_lite.suite.cells import Cell, CellContext, cell_seed
from robustbench_lite.suite.kinds.base import CellPayload, CheckKind, flat, register_kind
from robustbench_lite.suite.model_spec import Check


@register_kind
class CleanKind(CheckKind):
    """Clean accuracy; takes no component, no params and no threat."""

    name = "clean"
    position = 0
    metrics = ("clean_accuracy",)
    example_expect = 'clean_accuracy: ">= 0.9"'

    def run_cell(
        self,
        ctx: CellContext,
        check: Check,
        cell: Cell,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
    ) -> dict[str, Any]:
        # a randomized model: correct in at least draw_fraction of its draws (seeded per cell)
        correct, pred = judged_clean(model, x, y, seed=cell_seed(ctx.seed, check.id, cell.shard))
        return {"clean_correct": correct.cpu().tolist(), "pred": pred.cpu().tolist()}

    def cell_values(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return clean_values(payload["clean_correct"])

    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        return clean_values(flat(cells, "clean_correct")), {}

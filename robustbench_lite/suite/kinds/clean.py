"""The clean check: accuracy on unperturbed samples (``- id: clean``, no component)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from robustbench_lite.core.model import Model
from robustbench_lite.report.values import clean_values
from robustbench_lite.suite.cells import Cell, CellContext
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
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> dict[str, Any]:
        pred = model.logits(x).argmax(dim=1).cpu()
        return {"clean_correct": (pred == y).tolist(), "pred": pred.tolist()}

    def cell_values(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return clean_values(payload["clean_correct"])

    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        return clean_values(flat(cells, "clean_correct")), {}

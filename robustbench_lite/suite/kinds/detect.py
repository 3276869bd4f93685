"""The detect check: a detector scans the whole model once (``detect: tminer``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import DETECTORS, Registry, create_detector
from robustbench_lite.core.types import Inputs
from robustbench_lite.report.model import jsonable
from robustbench_lite.report.values import detect_values
from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.kinds.base import CellPayload, CheckKind, one_tensor, register_kind
from robustbench_lite.suite.model_spec import Check


@register_kind
class DetectKind(CheckKind):
    """A model scan (trojan detection); no threat, one cell on all samples. It needs no data:
    the detector gets the suite's samples when the suite (or ``--data``) names some, else
    None (T-Miner reads none)."""

    name = "detect"
    position = 3
    component_key = "detect"
    sharded = False
    needs_data = False
    metrics = ("flagged", "score")
    example_expect = "flagged: false"

    def components(self) -> Registry[Any]:
        return DETECTORS

    def run_cell(
        self,
        ctx: CellContext,
        check: Check,
        cell: Cell,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
    ) -> dict[str, Any]:
        assert check.component is not None
        data = (one_tensor(x, f"detector {check.component}"), y) if len(y) else None
        det = create_detector(check.component, **check.param_dict).scan(model, data)
        return {
            "flagged": bool(det.flagged),
            "score": float(det.score),
            "threshold": float(det.threshold),
            "evidence": jsonable(dict(det.evidence)),
        }

    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        p = cells[0][1]
        return detect_values(p["flagged"], p["score"]), {
            "threshold": p["threshold"],
            "evidence": p["evidence"],
        }

"""Cells: the unit of work of a suite run (one check on one shard of the data).

A cell's result is a small JSON-ready payload of per-sample vectors (indexed from the shard's
``start``), so cells are independent, can run in any process or machine, can be stored one
transaction each, and merge by sample index into the same report whatever ran them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from robustbench_lite.model import Model
from robustbench_lite.suite_model import Check, DefenseSpec

#: Clean/adversarial example pairs kept per attack check (first shard only), for reports.
EXAMPLES = 8
#: Largest sample (in values) whose examples are kept in the report.
EXAMPLE_MAX_VALUES = 4096


@dataclass(frozen=True)
class Cell:
    """Check ``check_id`` on samples ``[start, stop)`` (shard number ``shard``)."""

    check_id: str
    shard: int
    start: int
    stop: int


@dataclass
class CellContext:
    """What every cell needs: the model, the data and the resolved checks (sent to workers once)."""

    model: Model
    x: torch.Tensor
    y: torch.Tensor
    checks: dict[str, Check]
    seed: int
    _defended: dict[str, Model] = field(default_factory=dict, repr=False)

    def model_for(self, spec: DefenseSpec | None) -> Model:
        """The model, wrapped by the check's defense if it has one (built once per process)."""
        if spec is None:
            return self.model
        if spec.name not in self._defended:
            from robustbench_lite.registry import create_defense

            self._defended[spec.name] = create_defense(spec.use, **dict(spec.params)).apply(self.model)
        return self._defended[spec.name]


def cell_seed(seed: int, check_id: str, shard: int) -> int:
    """A 63-bit seed for one cell, independent of which executor or process runs it."""
    digest = hashlib.sha256(f"{seed}/{check_id}/{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def run_cell(ctx: CellContext, cell: Cell) -> dict[str, Any]:
    """Compute one cell; returns its JSON-ready payload (see module docstring)."""
    check = ctx.checks[cell.check_id]
    model = ctx.model_for(check.defense)
    x, y = ctx.x[cell.start : cell.stop], ctx.y[cell.start : cell.stop]
    start = time.perf_counter()
    runners = {"clean": _clean, "attack": _attack, "verify": _verify, "detect": _detect}
    payload = runners[check.kind](ctx, check, cell, model, x, y)
    payload["elapsed_s"] = time.perf_counter() - start
    return payload


def _clean(ctx: CellContext, check: Check, cell: Cell, model: Model, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    pred = model.logits(x).argmax(dim=1).cpu()
    return {"clean_correct": (pred == y).tolist(), "pred": pred.tolist()}


def _attack(ctx: CellContext, check: Check, cell: Cell, model: Model, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    from robustbench_lite.registry import create_attack

    assert check.component is not None and check.threat is not None
    attack = create_attack(check.component, **check.param_dict)
    gen = torch.Generator().manual_seed(cell_seed(ctx.seed, check.id, cell.shard))
    r = attack(model, x.to(model.device), y.to(model.device), check.threat, generator=gen)
    metrics = {k: v for k, v in r.metrics.items() if isinstance(v, (int, float, bool))}
    other = {k: _jsonable(v) for k, v in r.metrics.items() if k not in metrics}
    out: dict[str, Any] = {
        "clean_correct": r.clean_correct.tolist(), "success": r.success.tolist(),
        "adv_pred": r.adv_pred.tolist() if r.adv_pred is not None else None,
        "queries": r.queries, "metrics": metrics, "other_metrics": other,
    }  # fmt: skip
    if cell.shard == 0 and isinstance(r.x_adv, torch.Tensor) and x[0].numel() <= EXAMPLE_MAX_VALUES:
        k = min(EXAMPLES, len(y))
        out["examples"] = {
            "shape": list(x.shape[1:]), "y": y[:k].tolist(),
            "x": _rounded(x[:k]), "x_adv": _rounded(r.x_adv[:k].cpu()),
            "adv_pred": r.adv_pred[:k].tolist() if r.adv_pred is not None else None,
            "success": r.success[:k].tolist(),
        }  # fmt: skip
    return out


def _verify(ctx: CellContext, check: Check, cell: Cell, model: Model, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    from robustbench_lite.registry import create_verifier

    assert check.component is not None and check.threat is not None
    verifier = create_verifier(check.component, **check.param_dict)
    res = verifier.verify(model, x, y, check.threat, timeout_s=check.timeout_s)
    return {
        "status": [getattr(s, "value", str(s)) for s in res.per_sample],
        "reasons": {str(i): str(r) for i, r in res.reasons.items()},
        "counterexamples": sorted(int(i) for i in res.counterexamples),
    }


def _detect(ctx: CellContext, check: Check, cell: Cell, model: Model, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    from robustbench_lite.registry import create_detector

    assert check.component is not None
    det = create_detector(check.component, **check.param_dict).scan(model, (x, y))
    return {"flagged": bool(det.flagged), "score": float(det.score), "threshold": float(det.threshold),
            "evidence": _jsonable(dict(det.evidence))}  # fmt: skip


def _rounded(t: torch.Tensor) -> list[Any]:
    return torch.round(t.detach().float() * 10000).div(10000).tolist()


def _jsonable(value: Any) -> Any:
    from robustbench_lite.report import _jsonable as convert

    return convert(value)

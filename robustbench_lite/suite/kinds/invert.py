"""The invert check: model inversion of every class of the model (``invert: gmi``).

Each of the model's classes is reconstructed once from start images ``x0 = 0`` (MI-Face's
start; GMI/LOMMA use only the shape) under the threat ``none:targeted`` with target = the
class. It reads no data: what the attacker knows is the model (and the public split of the
inversion setting, which the attacks load themselves). Values: ``target_top1`` (re-checked on
the target model) and the attack's evaluation-classifier scores (:mod:`report.privacy_values`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from robustbench_lite.core.attack import Attack, AttackResult
from robustbench_lite.core.errors import DataError, RegistryError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import ATTACKS, Registry, create_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm
from robustbench_lite.report.model import jsonable
from robustbench_lite.report.privacy_values import INVERSION_METRICS, inversion_values
from robustbench_lite.report.values import numeric
from robustbench_lite.suite.cells import Cell, CellContext, cell_seed
from robustbench_lite.suite.kinds.base import CellPayload, CheckKind, register_kind
from robustbench_lite.suite.model_spec import Check

#: The threat every inversion runs under.
THREAT = "none:targeted"


class InversionAttacks(Registry[Any]):
    """The attack registry seen through the invert kind: only model-inversion attacks (they
    support ``none:targeted`` and report the evaluator's ``eval_top1``; the top-K attacks also
    take ``none:targeted`` but reconstruct nothing), so listings and errors name only those."""

    def __init__(self) -> None:
        super().__init__("inversion attack", str(ATTACKS.entry_point_group))
        self._loaded = True  # everything comes from ATTACKS

    @staticmethod
    def inverts(cls: Any) -> bool:
        supported = (Norm.NONE, Goal.TARGETED) in getattr(cls, "supports", ())
        return supported and "eval_top1" in getattr(cls, "metric_names", ())

    def get(self, name: str) -> Any:
        cls = ATTACKS.get(name)
        if not self.inverts(cls):
            raise RegistryError(
                f"attack {name!r} does not invert models; "
                f"inversion attacks: {', '.join(self.names())}"
            )
        return cls

    def names(self, pattern: str = "*") -> list[str]:
        return [n for n in ATTACKS.names(pattern) if self.inverts(ATTACKS.get(n))]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()


INVERSION_ATTACKS = InversionAttacks()


def invert_classes(attack: Attack, model: Model, *, generator: torch.Generator) -> AttackResult:
    """Reconstruct every class of ``model`` once with inversion ``attack``: start images
    ``x0 = bounds[0]`` (C, *input_shape), ``y = target =`` the classes 0..C-1, threat
    :data:`THREAT`. The one inversion path of the invert check and ``robustbench-lite attack``;
    the result's ``target`` holds the classes and ``success`` whether the target model puts each
    reconstruction in its class (re-checked by the Attack base class)."""
    if model.input_shape is None or model.num_classes is None:
        raise DataError(
            f"{model.name} declares no input shape or class count; an invert check needs "
            "both (e.g. a zoo:*-private-target model)"
        )
    classes = torch.arange(model.num_classes, device=model.device)
    x0 = torch.full((len(classes), *model.input_shape), float(model.bounds[0]))
    return attack(
        model,
        x0.to(model.device),
        classes,
        ThreatModel.parse(THREAT),
        target=classes,
        generator=generator,
    )


@register_kind
class InvertKind(CheckKind):
    """Model inversion of every class; no threat key (always ``none:targeted``), no data, one
    cell."""

    name = "invert"
    position = 4
    component_key = "invert"
    sharded = False
    needs_data = False
    metrics = INVERSION_METRICS
    example_expect = 'eval_top1: "<= 0.5"'

    def components(self) -> Registry[Any]:
        return INVERSION_ATTACKS

    def allowed_metrics(self, component: type | None) -> tuple[str, ...]:
        return tuple(dict.fromkeys(super().allowed_metrics(component)))  # each name once

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
        attack = create_attack(check.component, **check.param_dict)
        gen = torch.Generator().manual_seed(cell_seed(ctx.seed, check.id, cell.shard))
        r = invert_classes(attack, model, generator=gen)
        metrics = numeric(r.metrics)
        return {
            "classes": r.target.tolist() if r.target is not None else [],
            "target_hit": r.success.tolist(),
            "metrics": metrics,
            "other_metrics": {k: jsonable(v) for k, v in r.metrics.items() if k not in metrics},
        }

    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        p = cells[0][1]
        values = inversion_values(p["target_hit"], p["metrics"])
        return values, {"classes": p["classes"], **p.get("other_metrics", {})}

"""The verify check: fractions of samples proven robust (``verify: smt``), and the soundness
cross-check against every comparable attack check of the same run."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import VERIFIERS, Registry, create_verifier
from robustbench_lite.core.types import Goal, Norm
from robustbench_lite.report.model import CheckResult
from robustbench_lite.report.values import verify_values
from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.kinds.base import (
    CellPayload,
    CheckKind,
    check_kind,
    flat,
    register_kind,
)
from robustbench_lite.suite.model_spec import Check
from robustbench_lite.suite.nodes import Node

log = logging.getLogger(__name__)
#: Balls of one radius nest l1 inside l2 inside linf (|d|_inf <= |d|_2 <= |d|_1).
_NESTED = {Norm.L1: 0, Norm.L2: 1, Norm.LINF: 2}


@register_kind
class VerifyKind(CheckKind):
    """A verifier under a threat; ``params: {timeout_s: S}`` sets seconds per sample."""

    name = "verify"
    position = 2
    component_key = "verify"
    takes_threat = True
    metrics = (
        "verified_fraction",
        "falsified_fraction",
        "unknown_fraction",
        "soundness_violations",
    )
    example_expect = 'verified_fraction: ">= 0.5"'

    def components(self) -> Registry[Any]:
        return VERIFIERS

    def split_timeout(
        self, keys: Mapping[str, Node], name: str, params: dict[str, Any]
    ) -> tuple[dict[str, Any], float]:
        timeout = super().split_timeout(keys, name, params)[1]
        if "timeout_s" in params and "timeout_s" not in [p.name for p in VERIFIERS.params(name)]:
            timeout = float(keys["params"].child("timeout_s").typed((int, float), "seconds"))
            params = {k: v for k, v in params.items() if k != "timeout_s"}
        return params, timeout

    def run_cell(
        self,
        ctx: CellContext,
        check: Check,
        cell: Cell,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> dict[str, Any]:
        assert check.component is not None and check.threat is not None
        verifier = create_verifier(check.component, **check.param_dict)
        res = verifier.verify(model, x, y, check.threat, timeout_s=check.timeout_s)
        return {
            "status": [s.value for s in res.per_sample],
            "reasons": {str(i): str(r) for i, r in res.reasons.items()},
            "counterexamples": sorted(int(i) for i in res.counterexamples),
        }

    def cell_values(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {"verified_fraction": verify_values(payload["status"])["verified_fraction"]}

    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        status = flat(cells, "status")
        values = {**verify_values(status), "soundness_violations": 0}
        reasons = {
            str(c.start + int(i)): r for c, p in cells for i, r in p.get("reasons", {}).items()
        }
        return values, {"status": status, "reasons": reasons}

    def cross_check(
        self, checks: Mapping[str, Check], results: list[CheckResult]
    ) -> list[CheckResult]:
        """Fail every verify check that VERIFIED a sample some attack broke inside its threat set.

        An attack check is comparable when it uses the same defense and modality, an untargeted
        goal on both sides, and a ball inside the verified one (same norm, or l1 in l2 in linf,
        with an eps no larger): then a sample cannot be both VERIFIED and broken.
        """
        by_id = {r.id: r for r in results}
        out = []
        for r in results:
            check = checks[r.id]
            bad: dict[str, list[int]] = {}
            if check.kind == self.name and check.threat is not None:
                for other in checks.values():
                    if _comparable(check, other):
                        status, success = r.detail["status"], by_id[other.id].detail["success"]
                        hits = [
                            i
                            for i, (s, a) in enumerate(zip(status, success))
                            if s == "verified" and a
                        ]
                        if hits:
                            bad[other.id] = hits
            if bad:
                count = len({i for hits in bad.values() for i in hits})
                message = (
                    f"SOUNDNESS BUG: {check.component} VERIFIED {count} sample(s) that attacks "
                    f"broke inside the verified set: {bad}"
                )
                log.error("%s: %s", r.id, message)
                values = {**r.values, "soundness_violations": count}
                detail = {**r.detail, "soundness": message, "soundness_violations": bad}
                r = replace(r, passed=False, values=values, detail=detail)
            out.append(r)
        return out


def _comparable(v: Check, a: Check) -> bool:
    """Whether attack check ``a`` cannot break what verify check ``v`` VERIFIED (see above)."""
    if a.threat is None or v.threat is None or not check_kind(a.kind).reports_breaks:
        return False
    tv, ta = v.threat, a.threat
    same_defense = (v.defense.name if v.defense else None) == (
        a.defense.name if a.defense else None
    )
    inside = tv.norm == ta.norm or (
        ta.norm in _NESTED and tv.norm in _NESTED and _NESTED[ta.norm] < _NESTED[tv.norm]
    )
    return (
        same_defense
        and inside
        and tv.modality == ta.modality
        and tv.goal is Goal.UNTARGETED
        and ta.goal is Goal.UNTARGETED
        and ta.eps <= tv.eps + 1e-12
    )

"""The verify check: fractions of samples proven robust (``verify: complete``), and the soundness
cross-check against every comparable attack check of the same run.

A verifier that keeps per-sample search statistics (``complete``: the method that decided each
sample, domains visited, seconds in the attack, falsification, bounds and z3) gets them summed
over the check's samples in ``detail["timing"]["search"]``, with the per-sample dicts in
``detail["timing"]["per_sample"]`` (:mod:`robustbench_lite.report.verify_search`; timing detail,
since they follow the wall clock, so not values).

``verify: smoothing`` (randomized-smoothing certificates, Cohen et al. 2019) also reports the
certified accuracy at its ``radii`` (``certified_accuracy@0.5``, ...) and keeps per-sample radii
in the detail for the HTML figure (:mod:`robustbench_lite.report.certified`); its certificates
are about the smoothed classifier, so attacks on the model itself are not compared with them."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import VERIFIERS, Registry, create_verifier
from robustbench_lite.core.types import Goal, Inputs, Norm
from robustbench_lite.report.certified import certified_values
from robustbench_lite.report.model import CheckResult
from robustbench_lite.report.values import verify_values
from robustbench_lite.report.verify_search import search_summary
from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.kinds.base import (
    CellPayload,
    CheckKind,
    check_kind,
    flat,
    one_tensor,
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

    def quick(self, check: Check) -> Check:
        """The check with its verifier's ``quick_params`` (``smoothing``: fewer noise draws); a
        number the check sets lower already is kept."""
        if check.component is None:
            return check
        params = check.param_dict
        quick = getattr(VERIFIERS.get(check.component), "quick_params", {})
        for key, value in quick.items():
            mine = params.get(key)
            keep = isinstance(mine, (int, float)) and not isinstance(mine, bool) and mine < value
            params = params if keep else {**params, key: value}
        return replace(check, params=tuple(params.items())) if quick else check

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
        verifier = create_verifier(check.component, **check.param_dict)
        x = one_tensor(x, f"verifier {check.component}")
        res = verifier.verify(model, x, y, check.threat, timeout_s=check.timeout_s)
        return {
            "status": [s.value for s in res.per_sample],
            "reasons": {str(i): str(r) for i, r in res.reasons.items()},
            "counterexamples": sorted(int(i) for i in res.counterexamples),
            **_certified_payload(res.stats),
            **_search_payload(res.stats, len(y)),
        }

    def cell_values(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {"verified_fraction": verify_values(payload["status"])["verified_fraction"]}

    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        status = flat(cells, "status")
        values = {**verify_values(status), "soundness_violations": 0}
        reasons = {
            str(c.start + int(i)): r for c, p in cells for i, r in p.get("reasons", {}).items()
        }
        detail: dict[str, Any] = {"status": status, "reasons": reasons}
        if cells and all("search_stats" in p for _, p in cells):  # per sample, in sample order
            per_sample = flat(cells, "search_stats")
            detail["timing"] = {"search": search_summary(per_sample), "per_sample": per_sample}
        if cells and all("radius" in p for _, p in cells):  # randomized-smoothing certificates
            detail.update({k: flat(cells, k) for k in _PER_SAMPLE})
            detail.update({k: cells[0][1][k] for k in _SETTINGS if k in cells[0][1]})
            values["certified_accuracy"] = values["verified_fraction"]
            values.update(
                certified_values(
                    detail["correct"],
                    detail["radius"],
                    detail["prediction"],
                    detail.get("radii", ()),
                )
            )
        return values, detail

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


#: Per-sample vectors and settings a smoothing certificate's stats carry into the payload.
_PER_SAMPLE = ("radius", "correct", "prediction")
_SETTINGS = ("radii", "sigma", "n0", "n", "alpha", "certifies")


def _certified_payload(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The per-sample radii, correctness and predictions of a verifier that gives certified
    radii (``smoothing``), with its settings; empty for other verifiers."""
    if "radius" not in stats:
        return {}
    return {k: list(stats[k]) for k in _PER_SAMPLE} | {k: stats[k] for k in _SETTINGS if k in stats}


def _search_payload(stats: Mapping[str, Any], n: int) -> dict[str, Any]:
    """``search_stats``: the verifier's per-sample statistics (n JSON-ready dicts), when it
    keeps them for every sample (``complete``); empty otherwise."""
    per_sample = stats.get("per_sample")
    if not isinstance(per_sample, (list, tuple)) or len(per_sample) != n:
        return {}
    if not all(isinstance(s, Mapping) for s in per_sample):
        return {}
    return {"search_stats": [_jsonable_stats(s) for s in per_sample]}


def _jsonable_stats(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers, texts and flags of one sample's statistics (floats to 4 decimals, a
    non-finite one as None)."""
    out: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, float):
            out[str(key)] = round(value, 4) if math.isfinite(value) else None
        elif value is None or isinstance(value, (int, str, bool)):
            out[str(key)] = value
    return out


def _comparable(v: Check, a: Check) -> bool:
    """Whether attack check ``a`` cannot break what verify check ``v`` VERIFIED (see above)."""
    if a.threat is None or v.threat is None or not check_kind(a.kind).reports_breaks:
        return False
    if not getattr(VERIFIERS.get(str(v.component)), "certifies_model", True):
        return False  # its certificates are about another classifier (smoothing: g, not f)
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

"""Validation of a suite's ``threats``, ``defenses`` and ``checks`` sections (see schema.py).

What differs between kinds of checks (component key, parameters, threat rule, metric names) is
asked of the check's kind (``suite.kinds``); nothing here names a kind.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from robustbench_lite.core.errors import RobustbenchLiteError, UnsupportedThreatError, did_you_mean
from robustbench_lite.core.registry import DEFENSES
from robustbench_lite.core.threat import ThreatModel, parse_eps, require_supported
from robustbench_lite.suite.expect import Expect, parse_expect
from robustbench_lite.suite.kinds import CheckKind, all_kinds
from robustbench_lite.suite.kinds.base import check_component_params, component_class
from robustbench_lite.suite.model_spec import Check, DefenseSpec
from robustbench_lite.suite.nodes import Node

#: Keys every check may have; each kind with a component adds its key (attack, verify, ...).
COMMON_KEYS = ("id", "params", "threat", "defense", "n", "eps", "expect", "description")
DEFAULT_THREAT = "default"  # ``threat: default``: one check per default threat of the model
_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


def positive(node: Node) -> int:
    """A positive integer value."""
    n = node.typed(int, "a positive integer")
    if n < 1:
        node.fail(f"{n} must be >= 1")
    return int(n)


def parse_threat(node: Node, spec: Any) -> ThreatModel:
    """``ThreatModel.parse`` with the error located at ``node``."""
    try:
        return ThreatModel.parse(spec)
    except RobustbenchLiteError as exc:
        node.fail(str(exc))


def threats(node: Node) -> dict[str, ThreatModel]:
    """The named threats section."""
    if not isinstance(node.value, dict):
        node.fail(
            "expected a mapping of threat names to threats, e.g. linf-8: {norm: linf, eps: 8/255}"
        )
    out = {}
    for key in node.value:
        child = node.child(key)
        if key == DEFAULT_THREAT:
            child.fail(
                f"{DEFAULT_THREAT!r} is reserved for the model's default threats; pick another name"
            )
        out[str(key)] = parse_threat(child, child.value)
    return out


def defenses(node: Node) -> dict[str, DefenseSpec]:
    """The named defenses section: ``name: {use: REGISTRY_NAME, param: value}``."""
    if not isinstance(node.value, dict):
        node.fail("expected a mapping of defense names to {use: NAME, ...params}")
    out = {}
    for key in node.value:
        child = node.child(key)
        if not isinstance(child.value, dict) or "use" not in child.value:
            child.fail(
                "write a defense as {use: NAME, param: value, ...}, e.g. {use: bit_depth, bits: 5}"
            )
        use = child.child("use").typed(str, "a registered defense name")
        component_class(child.child("use"), DEFENSES, use)
        params = {str(k): v for k, v in child.value.items() if k != "use"}
        check_component_params(child, DEFENSES, use, params, nested=False)
        out[str(key)] = DefenseSpec(str(key), use, tuple(params.items()))
    return out


def checks(
    node: Node, named: dict[str, ThreatModel], guards: dict[str, DefenseSpec]
) -> tuple[Check, ...]:
    """The checks section; ``eps`` sweeps expand to one check per eps (``ID@eps=0.1``)."""
    if not isinstance(node.value, list) or not node.value:
        node.fail(
            "expected a non-empty list of checks, e.g. - {id: clean, expect: {clean_accuracy: '>= 0.9'}}"
        )
    out: list[Check] = []
    seen: dict[str, int] = {}
    for i in range(len(node.value)):
        child = node.child(i)
        for check in _check(child, named, guards):
            if check.id in seen:
                child.child("id").fail(
                    f"duplicate check id {check.id!r} (first on line {seen[check.id]})"
                )
            seen[check.id] = child.line
            out.append(check)
    return tuple(out)


def _check(
    node: Node, named: dict[str, ThreatModel], guards: dict[str, DefenseSpec]
) -> list[Check]:
    kinds = all_kinds()
    component_keys = tuple(k.component_key for k in kinds if k.component_key)
    keys = node.mapping(
        COMMON_KEYS[:1] + component_keys + COMMON_KEYS[1:], required=("id", "expect")
    )
    cid = keys["id"].typed(str, "a string")
    if not _ID.match(cid):
        keys["id"].fail(f"{cid!r}: use letters, digits, '.', '_' and '-' only")
    present = [k for k in component_keys if k in keys]
    if len(present) > 1:
        keys[present[1]].fail(
            f"a check has at most one of {'/'.join(component_keys)}; found {' and '.join(present)}"
        )
    kind = next((k for k in kinds if k.component_key == (present[0] if present else None)), None)
    if kind is None:  # every kind has a component: the check must name one
        keys["id"].fail(f"a check needs one of {'/'.join(component_keys)}")
    name, cls, params, timeout = kind.parse_component(keys, node)
    threat, model_threats = _threat(keys, kind, named, name, cls)
    defense = _defense(keys["defense"], guards) if "defense" in keys else None
    expect = _expect(keys["expect"], kind.allowed_metrics(cls))
    base = Check(
        id=cid,
        kind=kind.name,
        component=name,
        params=tuple(params.items()),
        threat=threat,
        model_threats=model_threats,
        defense=defense,
        expect=expect,
        line=node.line,
        n=positive(keys["n"]) if "n" in keys else None,
        timeout_s=timeout,
    )
    if "eps" not in keys:
        return [base]
    return _sweep(keys["eps"], base)


def _threat(
    keys: dict[str, Node],
    kind: CheckKind,
    named: dict[str, ThreatModel],
    name: str | None,
    cls: type | None,
) -> tuple[ThreatModel | None, bool]:
    if not kind.takes_threat:
        if "threat" in keys:
            keys["threat"].fail(
                f"a {kind.name} check takes no threat; remove it or add attack: NAME"
            )
        return None, False
    if "threat" not in keys:
        keys["id"].fail(
            f"a {kind.name} check needs a threat: a name from threats, an inline threat, or 'default'"
        )
    node = keys["threat"]
    if node.value == DEFAULT_THREAT:
        return None, True
    if isinstance(node.value, str) and node.value in named:
        threat = named[node.value]
    elif isinstance(node.value, str) and ":" not in node.value and node.value not in ("none",):
        node.fail(
            f"unknown threat {node.value!r}{did_you_mean(node.value, list(named))}; use a name from "
            "threats, 'default', or an inline spec such as linf:8/255"
        )
    else:
        threat = parse_threat(node, node.value)
    try:
        require_supported(kind.name, str(name), getattr(cls, "supports", None), threat)
    except UnsupportedThreatError as exc:
        node.fail(str(exc))
    return threat, False


def _defense(node: Node, guards: dict[str, DefenseSpec]) -> DefenseSpec:
    name = node.typed(str, "a defense name")
    if name in guards:
        return guards[name]
    if name in DEFENSES:
        return DefenseSpec(name, name, ())
    node.fail(
        f"unknown defense {name!r}{did_you_mean(name, list(guards))}; name one from the "
        "defenses section or a registered defense (robustbench-lite list defenses)"
    )


def _expect(node: Node, allowed: tuple[str, ...]) -> tuple[Expect, ...]:
    if not isinstance(node.value, dict):
        node.fail(
            "expected a mapping of metric to condition, e.g. {robust_accuracy: '>= 0.4'} ({} to only measure)"
        )
    out = []
    for metric in node.value:
        try:
            out.append(parse_expect(str(metric), node.value[metric], allowed))
        except RobustbenchLiteError as exc:
            node.child(metric).fail(str(exc))
    return tuple(out)


def _sweep(node: Node, base: Check) -> list[Check]:
    if base.threat is None:
        node.fail(
            "an eps sweep needs an explicit threat (not 'default', and a check kind that takes one)"
        )
    values = node.typed(list, "a list of eps values, e.g. [0.05, 0.1, 0.2]")
    if not values:
        node.fail("the eps sweep is empty; list at least one value")
    out = []
    for i, raw in enumerate(values):
        try:
            eps = parse_eps(raw, where="eps")
        except RobustbenchLiteError as exc:
            node.child(i).fail(str(exc))
        threat = replace(base.threat, eps=eps, name="")
        threat = ThreatModel(threat.norm, eps, threat.goal, threat.k, threat.modality)
        out.append(replace(base, id=f"{base.id}@eps={threat.spec().split(':')[1]}", threat=threat))
    return out

"""Validation of a suite's ``threats``, ``defenses`` and ``checks`` sections (see suite.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from robustbench_lite.errors import ParameterError, RobustbenchLiteError, did_you_mean
from robustbench_lite.suite_expect import METRICS, Expect, parse_expect
from robustbench_lite.suite_model import Check, DefenseSpec
from robustbench_lite.suite_yaml import Node
from robustbench_lite.threat import ThreatModel, parse_eps

CHECK_KEYS = ("id", "attack", "verify", "detect", "params", "threat", "defense", "n", "eps",
              "expect", "description")  # fmt: skip
DEFAULT_THREAT = "default"  # ``threat: default``: one check per default threat of the model
_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


def registry_of(kind: str) -> Any:
    """The registry of a check kind (attack/verify/detect) or of defenses."""
    from robustbench_lite import registry

    return {"attack": registry.ATTACKS, "verify": registry.VERIFIERS, "detect": registry.DETECTORS,
            "defense": registry.DEFENSES}[kind]  # fmt: skip


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
        node.fail("expected a mapping of threat names to threats, e.g. linf-8: {norm: linf, eps: 8/255}")
    out = {}
    for key in node.value:
        child = node.child(key)
        if key == DEFAULT_THREAT:
            child.fail(f"{DEFAULT_THREAT!r} is reserved for the model's default threats; pick another name")
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
            child.fail("write a defense as {use: NAME, param: value, ...}, e.g. {use: bit_depth, bits: 5}")
        use = child.child("use").typed(str, "a registered defense name")
        component(child.child("use"), "defense", use)
        params = {str(k): v for k, v in child.value.items() if k != "use"}
        check_params(child, "defense", use, params, nested=False)
        out[str(key)] = DefenseSpec(str(key), use, tuple(params.items()))
    return out


def component(node: Node, kind: str, name: str) -> type:
    """The registered class ``name`` of ``kind``; unknown names fail with suggestions."""
    try:
        return registry_of(kind).get(name)
    except RobustbenchLiteError as exc:
        node.fail(str(exc))


def check_params(node: Node, kind: str, name: str, params: dict[str, Any], *, nested: bool = True) -> None:
    """Unknown parameters, and values the component rejects, fail at load time."""
    reg = registry_of(kind)
    base = node.child("params") if nested else node
    for key, value in params.items():
        try:
            reg.check_params(name, {key: value})
        except ParameterError as exc:
            base.child(key).fail(exc.reason)
    try:
        reg.create(name, **params)
    except RobustbenchLiteError as exc:
        base.fail(str(exc))


def checks(node: Node, named: dict[str, ThreatModel], guards: dict[str, DefenseSpec]) -> tuple[Check, ...]:
    """The checks section; ``eps`` sweeps expand to one check per eps (``ID@eps=0.1``)."""
    if not isinstance(node.value, list) or not node.value:
        node.fail("expected a non-empty list of checks, e.g. - {id: clean, expect: {clean_accuracy: '>= 0.9'}}")
    out: list[Check] = []
    seen: dict[str, int] = {}
    for i in range(len(node.value)):
        child = node.child(i)
        for check in _check(child, named, guards):
            if check.id in seen:
                child.child("id").fail(f"duplicate check id {check.id!r} (first on line {seen[check.id]})")
            seen[check.id] = child.line
            out.append(check)
    return tuple(out)


def _check(node: Node, named: dict[str, ThreatModel], guards: dict[str, DefenseSpec]) -> list[Check]:
    keys = node.mapping(CHECK_KEYS, required=("id", "expect"))
    cid = keys["id"].typed(str, "a string")
    if not _ID.match(cid):
        keys["id"].fail(f"{cid!r}: use letters, digits, '.', '_' and '-' only")
    kinds = [k for k in ("attack", "verify", "detect") if k in keys]
    if len(kinds) > 1:
        keys[kinds[1]].fail(f"a check has at most one of attack/verify/detect; found {' and '.join(kinds)}")
    kind = kinds[0] if kinds else "clean"
    name, cls, params, timeout = None, None, {}, 60.0
    if kind != "clean":
        name = keys[kind].typed(str, f"a registered {kind} component name")
        cls = component(keys[kind], kind, name)
        params = dict(keys["params"].typed(dict, "a mapping of parameters")) if "params" in keys else {}
        if kind == "verify" and "timeout_s" in params and "timeout_s" not in [p.name for p in registry_of(kind).params(name)]:
            timeout = float(keys["params"].child("timeout_s").typed((int, float), "seconds"))
            params.pop("timeout_s")
        check_params(node, kind, name, {str(k): v for k, v in params.items()})
    elif "params" in keys:
        keys["params"].fail("a clean check takes no params; add attack/verify/detect: NAME")
    threat, model_threats = _threat(keys, kind, named, name, cls)
    defense = _defense(keys["defense"], guards) if "defense" in keys else None
    allowed = METRICS[kind] + tuple(getattr(cls, "metric_names", ()))
    expect = _expect(keys["expect"], allowed)
    base = Check(id=cid, kind=kind, component=name, params=tuple(params.items()), threat=threat,
                 model_threats=model_threats, defense=defense, expect=expect, line=node.line,
                 n=positive(keys["n"]) if "n" in keys else None, timeout_s=timeout)  # fmt: skip
    if "eps" not in keys:
        return [base]
    return _sweep(keys["eps"], base, cls)


def _threat(keys: dict[str, Node], kind: str, named: dict[str, ThreatModel], name: str | None,
            cls: type | None) -> tuple[ThreatModel | None, bool]:  # fmt: skip
    if kind in ("clean", "detect"):
        if "threat" in keys:
            keys["threat"].fail(f"a {kind} check takes no threat; remove it or add attack: NAME")
        return None, False
    if "threat" not in keys:
        keys["id"].fail(f"a {kind} check needs a threat: a name from threats, an inline threat, or 'default'")
    node = keys["threat"]
    if node.value == DEFAULT_THREAT:
        return None, True
    if isinstance(node.value, str) and node.value in named:
        threat = named[node.value]
    elif isinstance(node.value, str) and ":" not in node.value and node.value not in ("none",):
        node.fail(f"unknown threat {node.value!r}{did_you_mean(node.value, list(named))}; use a name from "
                  "threats, 'default', or an inline spec such as linf:8/255")
    else:
        threat = parse_threat(node, node.value)
    check_supports(node, kind, name, cls, threat)
    return threat, False


def check_supports(node: Node, kind: str, name: str | None, cls: type | None, threat: ThreatModel) -> None:
    """Fail when the component declares ``supports`` and the threat is not in it."""
    supports = getattr(cls, "supports", None)
    if not supports or (threat.norm, threat.goal) in supports:
        return
    listed = ", ".join(sorted(f"{n.value}/{g.value}" for n, g in supports))
    node.fail(f"{kind} {name} does not support {threat.norm.value}/{threat.goal.value} "
              f"(threat {threat.name}); it supports {listed}")  # fmt: skip


def _defense(node: Node, guards: dict[str, DefenseSpec]) -> DefenseSpec:
    name = node.typed(str, "a defense name")
    if name in guards:
        return guards[name]
    if name in registry_of("defense"):
        return DefenseSpec(name, name, ())
    node.fail(f"unknown defense {name!r}{did_you_mean(name, list(guards))}; name one from the "
              "defenses section or a registered defense (robustbench-lite list defenses)")


def _expect(node: Node, allowed: tuple[str, ...]) -> tuple[Expect, ...]:
    if not isinstance(node.value, dict):
        node.fail("expected a mapping of metric to condition, e.g. {robust_accuracy: '>= 0.4'} ({} to only measure)")
    out = []
    for metric in node.value:
        try:
            out.append(parse_expect(str(metric), node.value[metric], allowed))
        except RobustbenchLiteError as exc:
            node.child(metric).fail(str(exc))
    return tuple(out)


def _sweep(node: Node, base: Check, cls: type | None) -> list[Check]:
    if base.threat is None:
        node.fail("an eps sweep needs an explicit threat (not 'default' and not on a clean/detect check)")
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

"""The check-kind interface: what a kind of check (clean, attack, verify, detect) owns.

A kind owns everything that differs between kinds: the YAML key naming its component, how its
parameters parse, whether it takes a threat, the values its expectations may name, how one
cell of it runs, how its cells merge into report values, and any cross-check between checks.
The suite's parser, runner and merge call these methods and never test a kind's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from robustbench_lite.core.errors import (
    ParameterError,
    RobustbenchLiteError,
    UnsupportedThreatError,
)
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import Catalog, Registry, import_submodules
from robustbench_lite.core.types import Inputs
from robustbench_lite.core.verifier import DEFAULT_TIMEOUT_S
from robustbench_lite.report.model import CheckResult
from robustbench_lite.suite.cells import Cell, CellContext
from robustbench_lite.suite.model_spec import Check
from robustbench_lite.suite.nodes import Node

#: One cell with its JSON payload, as the executors return them.
CellPayload = tuple[Cell, Mapping[str, Any]]
#: The check kinds by name; every module of this package registers one (see ``all_kinds``).
KINDS: Catalog[CheckKind] = Catalog("check kind", None, hint="clean, attack, verify or detect")


class CheckKind(ABC):
    """One kind of check. Subclass, set the class attributes, implement ``run_cell`` and
    ``merge``, and register an instance with :func:`robustbench_lite.suite.kinds.register_kind`.

    Attributes:
        name: the kind as it appears in reports (``CheckResult.kind``).
        component_key: the YAML key that names the check's component (``attack: pgd``), or
            None for a kind without one (clean).
        takes_threat: the check needs a threat (else a ``threat:`` key is refused).
        sharded: the check's samples split into shards (else one cell on all samples).
        needs_data: the check reads the suite's data; a suite whose checks all read none (detect
            checks) runs without loading data unless the suite or ``--data`` names some.
        reports_breaks: its cells report per-sample ``success`` (a sample broken inside the
            check's threat set), which the verify kind's soundness cross-check reads.
        metrics: the values the kind reports, which its expectations may name.
        example_expect: an expectation for the generated default suite.
        position: where the kind comes in listings, messages and the default suite.
    """

    name: ClassVar[str]
    component_key: ClassVar[str | None] = None
    takes_threat: ClassVar[bool] = False
    sharded: ClassVar[bool] = True
    needs_data: ClassVar[bool] = True
    reports_breaks: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]] = ()
    example_expect: ClassVar[str] = ""
    position: ClassVar[int] = 100

    def __eq__(self, other: object) -> bool:  # one instance per kind class, even if re-imported
        return type(other).__qualname__ == type(self).__qualname__ and (
            type(other).__module__ == type(self).__module__
        )

    def __hash__(self) -> int:
        return hash((type(self).__module__, type(self).__qualname__))

    def components(self) -> Registry[Any] | None:
        """The registry the component comes from (None for a kind without components)."""
        return None

    def allowed_metrics(self, component: type | None) -> tuple[str, ...]:
        """Value names an expectation may use: the kind's, plus the component's ``metric_names``."""
        return self.metrics + tuple(getattr(component, "metric_names", ()))

    def parse_component(
        self, keys: Mapping[str, Node], check_node: Node
    ) -> tuple[str | None, type | None, dict[str, Any], float]:
        """The component name and class, its parameters and the check's timeout (seconds)."""
        registry = self.components()
        if self.component_key is None or registry is None:
            if "params" in keys:
                keys["params"].fail(
                    f"a {self.name} check takes no params; add attack/verify/detect: NAME"
                )
            return None, None, {}, DEFAULT_TIMEOUT_S
        node = keys[self.component_key]
        name = node.typed(str, f"a registered {self.component_key} component name")
        cls = component_class(node, registry, name)
        name = registry.canonical(name)  # an alias (``verify: smt``) runs and reports the name
        params = (
            dict(keys["params"].typed(dict, "a mapping of parameters")) if "params" in keys else {}
        )
        params, timeout = self.split_timeout(keys, name, {str(k): v for k, v in params.items()})
        check_component_params(check_node, registry, name, params)
        return name, cls, params, timeout

    def split_timeout(
        self, keys: Mapping[str, Node], name: str, params: dict[str, Any]
    ) -> tuple[dict[str, Any], float]:
        """Take the check's own settings out of ``params`` (the verify kind's ``timeout_s``)."""
        return params, DEFAULT_TIMEOUT_S

    def quick(self, check: Check) -> Check:
        """The check with faster settings for ``--quick``: its component's ``quick_params``
        (attacks declare them) over the check's own params."""
        registry = self.components()
        if check.component is None or registry is None:
            return check
        quick = getattr(registry.get(check.component), "quick_params", {})
        return (
            replace(check, params=tuple({**check.param_dict, **quick}.items())) if quick else check
        )

    @abstractmethod
    def run_cell(
        self,
        ctx: CellContext,
        check: Check,
        cell: Cell,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
    ) -> dict[str, Any]:
        """Compute one cell on samples ``x`` (n, ...) with labels ``y`` (n,): a JSON-ready payload
        of per-sample vectors (indexed from ``cell.start``). ``x`` is a mapping of named tensors
        (n, ...) for multimodal data (``fusion-world``); a kind that needs one tensor refuses it
        with :func:`one_tensor`."""

    def cell_values(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A short per-cell summary for the report's detail (shard by shard)."""
        return {}

    @abstractmethod
    def merge(self, cells: Sequence[CellPayload]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The report values and detail of one check from its cells, in shard order."""

    def cross_check(
        self, checks: Mapping[str, Check], results: list[CheckResult]
    ) -> list[CheckResult]:
        """Amend merged results using other checks (the verify kind's soundness check)."""
        return results


def component_class(node: Node, registry: Registry[Any], name: str) -> type:
    """The registered class ``name``; unknown names fail at ``node`` with suggestions."""
    try:
        return registry.get(name)
    except RobustbenchLiteError as exc:
        node.fail(str(exc))


def check_component_params(
    node: Node, registry: Registry[Any], name: str, params: dict[str, Any], *, nested: bool = True
) -> None:
    """Unknown parameters, and values the component rejects, fail at load time."""
    base = node.child("params") if nested else node
    for key, value in params.items():
        try:
            registry.check_params(name, {key: value})
        except ParameterError as exc:
            base.child(key).fail(exc.reason)
    try:
        registry.create(name, **params)
    except ParameterError as exc:
        (base.child(exc.param) if exc.param in params else base).fail(exc.reason)
    except RobustbenchLiteError as exc:
        base.fail(str(exc))


def one_tensor(x: Inputs, what: str) -> torch.Tensor:
    """``x`` itself when it is a tensor; a clear error for mapping (multimodal) inputs."""
    if isinstance(x, torch.Tensor):
        return x
    raise UnsupportedThreatError(
        f"{what} takes one input tensor, not a mapping of modalities ({', '.join(sorted(x))}); "
        "multimodal data runs in attack checks with a patch attack such as fusion_patch"
    )


def flat(cells: Sequence[CellPayload], key: str) -> list[Any]:
    """The per-sample vector ``key`` of all cells, in sample order."""
    return [v for _, p in cells for v in p[key]]


def register_kind(cls: type[CheckKind]) -> type[CheckKind]:
    """Class decorator: register one instance of a check kind under ``cls.name``."""
    KINDS.add(cls.name, cls())
    return cls


def all_kinds() -> list[CheckKind]:
    """Every check kind, by ``position`` (the modules of this package, imported on first use)."""
    _load()
    return sorted((KINDS.get(name) for name in KINDS.names()), key=lambda k: (k.position, k.name))


def check_kind(name: str) -> CheckKind:
    """The check kind ``name`` (``CheckResult.kind`` / ``Check.kind``)."""
    _load()
    return KINDS.get(name)


_loaded: list[bool] = []


def _load() -> None:
    if not _loaded:
        _loaded.append(True)
        import_submodules(__name__.rpartition(".")[0], [str(Path(__file__).parent)])

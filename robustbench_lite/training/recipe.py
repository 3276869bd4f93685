"""Training recipes: a YAML mapping validated into a :class:`Recipe`.

::

    arch: robustbench_lite.zoo.digits:digits_cnn   # MODULE:ATTR, a class or factory (required)
    data: digits                 # a dataset name, or {name: orl, options: {size: [56, 46]}}
    seed: 0
    epochs: 30                   # required
    batch_size: 64
    optimizer: {name: adam, lr: 0.01}                # adam | sgd (momentum), weight_decay
    schedule: one-cycle                              # fixed | one-cycle | accelat, or {name: ..., PARAM: ...}
    trainer: {name: pgd-at, threat: linf:0.1, steps: 10}   # standard | gaussian | pgd-at | trades
    validation: {fraction: 0.15, steps: 10}          # held out of the training split

The text is parsed by the caller with the project's safe YAML loader (``suite.nodes``:
``safe_load`` semantics, size and alias limits, line numbers); this module only validates the
resulting mapping, so the content floor never reads YAML itself. Errors are one line:
``recipe.yaml:7 trainer.steps: must be >= 1, not 0; e.g. steps: 10`` (:class:`RecipeError`).

``validation.fraction`` defaults to 0.15 for schedules that follow validation accuracy
(``accelat``) and to 0 otherwise; the validation samples are a seeded random subset of the
training split that is then not trained on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robustbench_lite.core.errors import RecipeError, RobustbenchLiteError, did_you_mean
from robustbench_lite.core.io import recipe_hash
from robustbench_lite.training.loop import OptimizerSpec
from robustbench_lite.training.registry import (
    SCHEDULES,
    TRAINERS,
    create_schedule,
    create_trainer,
    schedule_names,
    trainer_names,
)

__all__ = ["Recipe", "parse_recipe"]

KEYS = ("arch", "data", "seed", "epochs", "batch_size", "optimizer", "schedule", "trainer",
        "validation")  # fmt: skip
REQUIRED = ("arch", "data", "epochs")
#: Most epochs a recipe may ask for (a typo such as 30000 fails fast instead of running a day).
MAX_EPOCHS = 10_000
DEFAULT_VALIDATION_FRACTION = 0.15


@dataclass(frozen=True)
class Recipe:
    """A validated training recipe (see the module docstring for the YAML form).

    Args:
        arch: ``MODULE:ATTR`` that builds the untrained network.
        data: dataset name (``datasets.load_data``); ``data_options`` its options.
        seed: seeds the network's initialisation and the training's random stream.
        epochs, batch_size: passes over the training split and samples per step.
        optimizer: optimiser and learning rate.
        schedule, schedule_params: the learning-rate schedule's name and parameters.
        trainer, trainer_params: the trainer's name and parameters.
        validation_fraction: share of the training split held out for validation.
        validation_steps: PGD steps of the validation score (adversarial trainers).
        source: where the recipe came from, for messages.
    """

    arch: str
    data: str
    epochs: int
    data_options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 64
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: str = "fixed"
    schedule_params: Mapping[str, Any] = field(default_factory=dict)
    trainer: str = "standard"
    trainer_params: Mapping[str, Any] = field(default_factory=dict)
    validation_fraction: float = 0.0
    validation_steps: int = 10
    source: str = "recipe"

    def canonical(self) -> dict[str, Any]:
        """Everything that determines the weights, as plain JSON values (defaults filled in)."""
        return {
            "arch": self.arch,
            "data": {"name": self.data, "options": dict(self.data_options)},
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": {
                "name": self.optimizer.name,
                "lr": self.optimizer.lr,
                "weight_decay": self.optimizer.weight_decay,
                "momentum": self.optimizer.momentum,
            },
            "schedule": {"name": self.schedule, **dict(self.schedule_params)},
            "trainer": {"name": self.trainer, **dict(self.trainer_params)},
            "validation": {"fraction": self.validation_fraction, "steps": self.validation_steps},
        }

    @property
    def hash(self) -> str:
        """12 hex digits of the SHA-256 of :meth:`canonical` (as the zoo keys its cache)."""
        return recipe_hash(self.canonical())

    def build_trainer(self) -> Any:
        """The trainer object."""
        return create_trainer(self.trainer, **self.trainer_params)

    def build_schedule(self) -> Any:
        """The schedule object."""
        return create_schedule(self.schedule, **self.schedule_params)


class _At:
    """A value of the recipe with its dotted path and line, for one-line errors."""

    def __init__(self, value: Any, path: str, line: int, source: str) -> None:
        self.value, self.path, self.line, self.source = value, path, line, source

    def fail(self, message: str) -> RecipeError:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return RecipeError(f"{where} {self.path or '<top>'}: {message}")

    def child(self, key: str) -> _At:
        lines = getattr(self.value, "key_lines", {})
        path = f"{self.path}.{key}" if self.path else key
        value = self.value.get(key) if isinstance(self.value, Mapping) else None
        return _At(value, path, lines.get(key, self.line), self.source)

    def mapping(self, allowed: tuple[str, ...], what: str) -> dict[str, _At]:
        if not isinstance(self.value, Mapping):
            raise self.fail(f"expected {what}, got {_shown(self.value)}")
        for key in self.value:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) or f"; allowed: {', '.join(allowed)}"
                raise self.child(str(key)).fail(f"unknown key{hint}")
        return {str(k): self.child(str(k)) for k in self.value}

    def integer(self, lo: int, hi: int, example: str) -> int:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(f"expected a whole number in [{lo}, {hi}], got {_shown(v)}; {example}")
        return v

    def number(self, example: str) -> float:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(f"expected a finite number, got {_shown(v)}; {example}")
        return float(v)

    def text(self, example: str) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.fail(f"expected a name, got {_shown(self.value)}; {example}")
        return self.value.strip()


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _plain(value: Any, depth: int = 0) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return not isinstance(value, float) or math.isfinite(value)
    if isinstance(value, list) and depth < 3 and len(value) <= 64:
        return all(_plain(v, depth + 1) for v in value)
    return False


def _component(node: _At, kind: str, names: list[str], default: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``{name: ..., PARAM: ...}`` of a registered trainer or schedule."""
    if node.value is None:
        return default, {}
    params: dict[str, Any] = {}
    if isinstance(node.value, str):
        name, where = node.value.strip(), node
    elif isinstance(node.value, Mapping):
        if "name" not in node.value:
            raise node.fail(f"missing key 'name'; e.g. {{name: {names[0]}}}")
        where = node.child("name")
        name = where.text(f"e.g. name: {names[0]}")
        for key in node.value:
            if key == "name":
                continue
            child = node.child(str(key))
            if not _plain(child.value):
                raise child.fail("expected a number, a string, true/false or a list of them")
            params[str(key)] = child.value
    else:
        raise node.fail(
            f"expected a {kind} name or a mapping with 'name', got {_shown(node.value)}"
        )
    if name not in names:
        raise where.fail(
            f"unknown {kind} {name!r}{did_you_mean(name, names)}; choose one of {', '.join(names)}"
        )
    return name, params


def _checked(node: _At, build: Any, name: str, params: dict[str, Any]) -> Any:
    try:
        return build(name, **params)
    except RobustbenchLiteError as exc:
        param = getattr(exc, "param", None)
        target = node.child(param) if param and param in params else node
        reason = getattr(exc, "reason", None) or str(exc)
        raise target.fail(reason) from None


def parse_recipe(doc: Any, source: str = "recipe") -> Recipe:
    """Validate a parsed recipe mapping (``LineDict`` from the safe loader, or a plain dict).

    Raises :class:`RecipeError` with ``source:line key: what is wrong; how to fix it``.
    """
    top = _At(doc, "", getattr(doc, "line", 0), source)
    keys = top.mapping(KEYS, f"a recipe mapping with keys {', '.join(KEYS)}")
    for key in REQUIRED:
        if key not in keys:
            raise top.fail(f"missing required key {key!r} (see examples/recipes/)")
    arch = keys["arch"].text("e.g. arch: robustbench_lite.zoo.digits:digits_cnn")
    module, sep, attr = arch.partition(":")
    dotted = module.replace(".", "_"), attr.replace(".", "_")
    if not sep or not all(part.isidentifier() for part in dotted):
        raise keys["arch"].fail(
            f"write MODULE:ATTR, e.g. robustbench_lite.zoo.digits:digits_cnn, not {arch!r}"
        )
    data, options = _data(keys["data"])
    epochs = keys["epochs"].integer(1, MAX_EPOCHS, "e.g. epochs: 30")
    seed = keys["seed"].integer(0, 2**63 - 1, "e.g. seed: 0") if "seed" in keys else 0
    batch = (
        keys["batch_size"].integer(1, 1 << 20, "e.g. batch_size: 64")
        if "batch_size" in keys
        else 64
    )
    optimizer = _optimizer(keys.get("optimizer"))
    t_node = keys.get("trainer") or top.child("trainer")
    s_node = keys.get("schedule") or top.child("schedule")
    trainer, t_params = _component(t_node, "trainer", trainer_names(), "standard")
    schedule, s_params = _component(s_node, "schedule", schedule_names(), "fixed")
    _checked(t_node, TRAINERS.create, trainer, t_params)
    sched = _checked(s_node, SCHEDULES.create, schedule, s_params)
    fraction, steps = _validation(keys.get("validation"), sched.needs_validation, schedule)
    return Recipe(
        arch=arch,
        data=data,
        data_options=options,
        epochs=epochs,
        seed=seed,
        batch_size=batch,
        optimizer=optimizer,
        schedule=schedule,
        schedule_params=s_params,
        trainer=trainer,
        trainer_params=t_params,
        validation_fraction=fraction,
        validation_steps=steps,
        source=source,
    )


def _data(node: _At) -> tuple[str, dict[str, Any]]:
    from robustbench_lite.datasets import list_datasets

    known = [d for d in list_datasets() if d != "npz"]
    if isinstance(node.value, Mapping):
        parts = node.mapping(("name", "options"), "a dataset name or {name: ..., options: {...}}")
        if "name" not in parts:
            raise node.fail("missing key 'name'; e.g. data: {name: digits}")
        name_node = parts["name"]
        options_node = parts.get("options")
    else:
        name_node, options_node = node, None
    name = name_node.text("e.g. data: digits")
    if name.replace("_", "-") not in known and name not in known:
        raise name_node.fail(
            f"unknown dataset {name!r}{did_you_mean(name, known)}; choose one of {', '.join(known)}"
        )
    options: dict[str, Any] = {}
    if options_node is not None and options_node.value is not None:
        if not isinstance(options_node.value, Mapping):
            raise options_node.fail("expected a mapping of dataset options, e.g. {size: [56, 46]}")
        for key in options_node.value:
            child = options_node.child(str(key))
            if not _plain(child.value):
                raise child.fail("expected a number, a string, true/false or a list of them")
            options[str(key)] = child.value
    return name, options


def _optimizer(node: _At | None) -> OptimizerSpec:
    if node is None or node.value is None:
        return OptimizerSpec()
    parts = node.mapping(
        ("name", "lr", "weight_decay", "momentum"), "a mapping such as {name: adam, lr: 0.01}"
    )
    kwargs: dict[str, Any] = {}
    if "name" in parts:
        kwargs["name"] = parts["name"].text("e.g. name: adam")
    for key in ("lr", "weight_decay", "momentum"):
        if key in parts:
            kwargs[key] = parts[key].number(f"e.g. {key}: {getattr(OptimizerSpec(), key) or 0.9}")
    try:
        return OptimizerSpec(**kwargs)
    except RobustbenchLiteError as exc:
        param = getattr(exc, "param", "")
        raise (parts.get(param) or node).fail(getattr(exc, "reason", str(exc))) from None


def _validation(node: _At | None, needed: bool, schedule: str) -> tuple[float, int]:
    fraction = DEFAULT_VALIDATION_FRACTION if needed else 0.0
    steps = 10
    if node is not None and node.value is not None:
        parts = node.mapping(("fraction", "steps"), "a mapping such as {fraction: 0.15, steps: 10}")
        if "fraction" in parts:
            fraction = parts["fraction"].number("e.g. fraction: 0.15")
            if not 0 <= fraction < 1:
                raise parts["fraction"].fail(f"must be in [0, 1), not {fraction!r}; e.g. 0.15")
            if needed and fraction == 0:
                raise parts["fraction"].fail(
                    f"the {schedule} schedule follows validation accuracy; hold out a share of "
                    "the training split, e.g. fraction: 0.15"
                )
        if "steps" in parts:
            steps = parts["steps"].integer(1, 10_000, "e.g. steps: 10")
    return fraction, steps

"""The ``Trainer`` and ``Schedule`` registries (the same :class:`Registry` as attacks use).

Built-in trainers live in :mod:`~robustbench_lite.training.objectives`, built-in schedules in
:mod:`~robustbench_lite.training.schedules`; both are imported on the first lookup. A third party
adds one with ``@register_trainer("name")`` (or ``@register_schedule``) on a frozen dataclass in
a module on the entry-point group ``robustbench_lite.trainers`` (or ``.schedules``).
"""

from __future__ import annotations

import importlib
from typing import Any

from robustbench_lite.core.registry import Registry

TRAINERS: Registry[Any] = Registry("trainer", "robustbench_lite.trainers")
SCHEDULES: Registry[Any] = Registry("schedule", "robustbench_lite.schedules")
TRAINERS.hint = "see examples/recipes/ and robustbench_lite.training"
SCHEDULES.hint = "see examples/recipes/ and robustbench_lite.training"

register_trainer = TRAINERS.register
register_schedule = SCHEDULES.register

_BUILTIN = ("robustbench_lite.training.objectives", "robustbench_lite.training.schedules")


def _builtins() -> None:
    for name in _BUILTIN:
        importlib.import_module(name)


def create_trainer(name: str, **params: Any) -> Any:
    """The trainer ``name`` with ``params`` (unknown names and parameters are refused)."""
    _builtins()
    return TRAINERS.create(name, **params)


def create_schedule(name: str, **params: Any) -> Any:
    """The learning-rate schedule ``name`` with ``params``."""
    _builtins()
    return SCHEDULES.create(name, **params)


def trainer_names() -> list[str]:
    """Sorted names of the registered trainers."""
    _builtins()
    return TRAINERS.names()


def schedule_names() -> list[str]:
    """Sorted names of the registered schedules."""
    _builtins()
    return SCHEDULES.names()

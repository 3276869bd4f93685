"""One registry mechanism, used four times: attacks, verifiers, defenses, detectors.

Built-in components are found exactly as third-party ones are: through the entry-point group of
the registry (declared in pyproject.toml), loaded lazily on the first lookup. So
``import robustbench_lite`` stays cheap and the core never imports its plug-ins.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import inspect
import logging
import numbers
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from robustbench_lite.errors import ParameterError, RegistryError, did_you_mean

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    """One hyperparameter of a component: name, type annotation (as text), default, doc."""

    name: str
    type: str
    default: Any
    doc: str = ""


class Registry(Generic[T]):
    """Name -> component class, with lazy entry-point discovery and strict parameters.

    Args:
        kind: what is registered, for messages ("attack", "verifier", ...).
        entry_point_group: the ``importlib.metadata`` group scanned on first lookup.
    """

    def __init__(self, kind: str, entry_point_group: str) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str, *, replace: bool = False) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@register_attack("pgd")``. Duplicate names raise unless ``replace``."""

        def decorator(cls: type[T]) -> type[T]:
            self.load_plugins()  # so a clash with a built-in is caught now, not at its import
            existing = self._classes.get(name)
            if existing is not None and existing is not cls and not replace:
                if (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
                    raise RegistryError(
                        f"{self.kind} {name!r} is already registered by "
                        f"{existing.__module__}.{existing.__qualname__}; pass replace=True to override"
                    )
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return decorator

    def load_plugins(self) -> None:
        """Import every module of the entry-point group once (built-ins and third parties)."""
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.entry_point_group):
            try:
                ep.load()
            except Exception as exc:  # a broken third-party plug-in must not break the rest
                log.warning("could not load %s plug-in %r (%s): %s", self.kind, ep.name, ep.value, exc)

    def get(self, name: str) -> type[T]:
        """The class registered under ``name``; unknown names suggest the closest ones."""
        if name not in self._classes:
            self.load_plugins()
        if name not in self._classes:
            raise RegistryError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._classes) or ''}"
                f" (see `robustbench-lite list {self.kind}s`)"
            )
        return self._classes[name]

    def params(self, name: str) -> list[ParamInfo]:
        """The hyperparameters of a component (its dataclass fields)."""
        cls = self.get(name)
        if not dataclasses.is_dataclass(cls):
            return []
        out = []
        docs = arg_docs(cls)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            doc = str(f.metadata.get("doc", "")) or docs.get(f.name, "")
            out.append(ParamInfo(f.name, str(f.type), default, doc))
        return out

    def check_params(self, name: str, params: Mapping[str, Any]) -> None:
        """Raise :class:`ParameterError` for a parameter ``name`` does not take, or a value of the
        wrong kind for a scalar (int / float / bool / str) parameter."""
        infos = {p.name: p for p in self.params(name)}
        for key, value in params.items():
            if key not in infos:
                known = list(infos)
                hint = did_you_mean(key, known) or (
                    f"; it takes {', '.join(known)}" if known else "; it takes no parameters"
                )
                raise ParameterError(key, f"unknown parameter of {name}{hint}")
            info = infos[key]
            expected = _SCALARS.get(info.type.removesuffix(" | None"))
            if expected is not None and value is not None and not expected[1](value):
                example = f"; e.g. {key}={info.default!r}" if info.default is not None else ""
                raise ParameterError(key, f"{name} takes {expected[0]}, not {value!r}{example}")

    def create(self, name: str, **params: Any) -> T:
        """Instantiate ``name`` with ``params``; ``None`` values are dropped (timm style)."""
        params = {k: v for k, v in params.items() if v is not None}
        self.check_params(name, params)
        cls = self.get(name)
        try:
            return cls(**params)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{self.kind} {name}: bad parameters {params}: {exc}") from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the fnmatch ``pattern``."""
        self.load_plugins()
        return sorted(n for n in self._classes if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._classes


@functools.cache
def arg_docs(cls: type) -> dict[str, str]:
    """Parameter docs from the ``Args:`` sections of ``cls``'s docstrings (its own first, then its
    bases'): ``name: text`` or ``a, b: text`` lines, continuation lines joined, at most 120 chars.
    Cached per class: ``params`` runs on every ``create`` and docstrings do not change."""
    docs: dict[str, str] = {}
    for klass in cls.__mro__:
        lines = inspect.cleandoc(klass.__dict__.get("__doc__") or "").splitlines()
        start = next((k + 1 for k, line in enumerate(lines) if line.strip() == "Args:"), len(lines))
        names: list[str] = []
        mine: set[str] = set()  # documented first by this class: its continuation lines belong to it
        arg_indent = None
        for line in lines[start:]:
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if not stripped:
                continue
            if indent == 0:  # the next section (Shape:, Returns:, ...)
                break
            head, sep, text = stripped.partition(": ")
            params = [n.strip() for n in head.split(",")]
            if sep and (arg_indent is None or indent <= arg_indent) and all(n.isidentifier() for n in params):
                arg_indent, names = indent, params
                for n in names:
                    if n not in docs:
                        docs[n] = text
                        mine.add(n)
            else:
                for n in names:
                    if n in mine:
                        docs[n] = f"{docs[n]} {stripped}"
    return {k: v if len(v) <= 120 else v[:117].rstrip() + "..." for k, v in docs.items()}


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


#: Declared scalar types (as annotation strings) -> (words for errors, accepted values).
_SCALARS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "int": ("a whole number", _is_int),
    "float": ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
}

ATTACKS: Registry[Any] = Registry("attack", "robustbench_lite.attacks")
VERIFIERS: Registry[Any] = Registry("verifier", "robustbench_lite.verifiers")
DEFENSES: Registry[Any] = Registry("defense", "robustbench_lite.defenses")
DETECTORS: Registry[Any] = Registry("detector", "robustbench_lite.detectors")

register_attack = ATTACKS.register
create_attack = ATTACKS.create
list_attacks = ATTACKS.names
register_verifier = VERIFIERS.register
create_verifier = VERIFIERS.create
list_verifiers = VERIFIERS.names
register_defense = DEFENSES.register
create_defense = DEFENSES.create
list_defenses = DEFENSES.names
register_detector = DETECTORS.register
create_detector = DETECTORS.create
list_detectors = DETECTORS.names

REGISTRIES: dict[str, Registry[Any]] = {
    "attacks": ATTACKS,
    "verifiers": VERIFIERS,
    "defenses": DEFENSES,
    "detectors": DETECTORS,
}

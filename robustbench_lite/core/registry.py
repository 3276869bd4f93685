"""One registry mechanism, used four times: attacks, verifiers, defenses, detectors.

Built-in components are found exactly as third-party ones are: through the entry-point group of
the registry (declared in pyproject.toml), loaded lazily on the first lookup. So
``import robustbench_lite`` stays cheap and the core never imports its plug-ins.

A name may have aliases (``@register_verifier("complete", aliases=("smt",))``): an alias finds
the same item everywhere a name does, while listings, reports and caches use the canonical
name (:meth:`Catalog.canonical`), so a suite that says ``smt`` gives the results of
``complete``, recorded as ``complete``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import importlib
import inspect
import logging
import math
import numbers
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

from robustbench_lite.core.errors import (
    ParameterError,
    RegistryError,
    RobustbenchLiteError,
    did_you_mean,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    """One hyperparameter of a component: name, type annotation (as text), default, doc."""

    name: str
    type: str
    default: Any
    doc: str = ""


class Catalog(Generic[T]):
    """Name -> item, filled by the modules of an entry-point group on the first lookup.

    The zoo (``ZooEntry`` items), the executors and the report formats are catalogs; the four
    component registries below are catalogs of classes with parameters.

    Args:
        kind: what is listed, for messages ("zoo model", "executor", ...).
        entry_point_group: the ``importlib.metadata`` group scanned on first lookup, or None
            for a catalog whose items are all added in code.
        hint: what the unknown-name message suggests, e.g. "see `robustbench-lite zoo list`".
    """

    def __init__(self, kind: str, entry_point_group: str | None, *, hint: str = "") -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.hint = hint or f"see `robustbench-lite list {kind}s`"
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # alias -> canonical name
        self._loaded = entry_point_group is None

    def add(self, name: str, item: T, *, replace: bool = False) -> T:
        """Add ``item`` under ``name``; another item under a taken name raises unless ``replace``
        (which also takes the name back from an alias)."""
        if name in self._aliases:
            if not replace:
                raise RegistryError(
                    f"{self.kind} {name!r} is already an alias of {self._aliases[name]!r}; "
                    "pass replace=True to override"
                )
            del self._aliases[name]
        existing = self._items.get(name)
        if (
            existing is not None
            and existing is not item
            and not replace
            and not self._same(existing, item)
        ):
            raise RegistryError(
                f"{self.kind} {name!r} is already registered{self._by(existing)}; "
                "pass replace=True to override"
            )
        self._items[name] = item
        return item

    def add_alias(self, alias: str, name: str, *, replace: bool = False) -> None:
        """Let ``alias`` find the item ``name`` (registered, or registered later). An alias
        that is a registered name raises; one that is another name's alias raises unless
        ``replace``."""
        if alias in self._items and alias != name:
            raise RegistryError(
                f"{self.kind} alias {alias!r} of {name!r} is already a registered name; "
                "choose another alias"
            )
        taken = self._aliases.get(alias)
        if taken is not None and taken != name and not replace:
            raise RegistryError(
                f"{self.kind} alias {alias!r} of {name!r} is already an alias of {taken!r}; "
                "pass replace=True to override"
            )
        if alias != name:
            self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        """The registered name ``name`` stands for: itself, or the name it is an alias of."""
        if name not in self._items and name not in self._aliases:
            self.load_plugins()
        return name if name in self._items else self._aliases.get(name, name)

    def aliases(self, name: str) -> list[str]:
        """The sorted aliases of the registered name ``name`` (empty for none)."""
        self.load_plugins()
        return sorted(a for a, n in self._aliases.items() if n == name)

    def _by(self, existing: T) -> str:
        """Who registered ``existing``, for the clash message (" by module.Class")."""
        return ""

    def _same(self, existing: T, item: T) -> bool:
        """Whether re-adding ``item`` over ``existing`` is a re-import rather than a clash."""
        return bool(existing == item)

    def load_plugins(self) -> None:
        """Import every module of the entry-point group once (built-ins and third parties)."""
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=str(self.entry_point_group)):
            try:
                ep.load()
            except Exception as exc:  # a broken third-party plug-in must not break the rest
                log.warning(
                    "could not load %s plug-in %r (%s): %s", self.kind, ep.name, ep.value, exc
                )

    def get(self, name: str) -> T:
        """The item registered under ``name`` or an alias of it; unknown names suggest the
        closest names and aliases, and list the available names with their aliases."""
        key = self.canonical(name)
        if key not in self._items:
            available = ", ".join(self._listed(n) for n in sorted(self._items))
            close = did_you_mean(name, [*self._items, *self._aliases])
            raise RegistryError(
                f"unknown {self.kind} {name!r}{close or ''}"
                f"; available: {available or 'none'} ({self.hint})"
            )
        return self._items[key]

    def _listed(self, name: str) -> str:
        """``name``, with its aliases: ``"complete (alias smt)"``."""
        aliases = sorted(a for a, n in self._aliases.items() if n == name)
        if not aliases:
            return name
        return f"{name} (alias{'es' if len(aliases) > 1 else ''} {', '.join(aliases)})"

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names (never aliases) whose name or one of its aliases matches
        the fnmatch ``pattern``."""
        self.load_plugins()
        hits = {n for n in self._items if fnmatch.fnmatch(n, pattern)}
        hits |= {
            n for a, n in self._aliases.items() if n in self._items and fnmatch.fnmatch(a, pattern)
        }
        return sorted(hits)

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._items or (
            isinstance(name, str) and self._aliases.get(name) in self._items
        )


class Registry(Catalog[type[T]]):
    """Name -> component class, with lazy entry-point discovery and strict parameters.

    Args:
        kind: what is registered, for messages ("attack", "verifier", ...).
        entry_point_group: the ``importlib.metadata`` group scanned on first lookup.
    """

    def __init__(self, kind: str, entry_point_group: str) -> None:
        super().__init__(kind, entry_point_group)

    def _same(self, existing: type[T], item: type[T]) -> bool:
        return (existing.__module__, existing.__qualname__) == (item.__module__, item.__qualname__)

    def _by(self, existing: type[T]) -> str:
        return f" by {existing.__module__}.{existing.__qualname__}"

    def register(
        self, name: str, *, aliases: Iterable[str] = (), replace: bool = False
    ) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@register_attack("pgd")``. Duplicate names raise unless ``replace``.

        ``aliases``: other names that find the class (an old name kept working after a
        rename); the class's ``name`` and every report keep the canonical ``name``."""
        aliases = tuple(aliases)

        def decorator(cls: type[T]) -> type[T]:
            self.load_plugins()  # so a clash with a built-in is caught now, not at its import
            self.add(name, cls, replace=replace)
            for alias in aliases:
                self.add_alias(alias, name, replace=replace)
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return decorator

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
            out.append(ParamInfo(f.name, _type_text(f.type), default, doc))
        return out

    def check_params(self, name: str, params: Mapping[str, Any]) -> None:
        """Raise :class:`ParameterError` for a parameter ``name`` does not take, a value of the
        wrong kind for a scalar (int / float / bool / str) parameter, or a number that is not
        finite (NaN, inf) anywhere in a parameter declared with ``float`` (``float``,
        ``float | None``, ``tuple[float, ...]``).

        The one numbers check of every component: a NaN step size would make an attack a no-op
        and its check pass, so no component needs (or has) its own."""
        infos = {p.name: p for p in self.params(name)}
        for key, value in params.items():
            if key not in infos:
                known = list(infos)
                hint = did_you_mean(key, known) or (
                    f"; it takes {', '.join(known)}" if known else "; it takes no parameters"
                )
                raise ParameterError(key, f"unknown parameter of {name}{hint}")
            info = infos[key]
            example = f"; e.g. {key}={info.default!r}" if info.default is not None else ""
            expected = _SCALARS.get(info.type.removesuffix(" | None"))
            if expected is not None and value is not None and not expected[1](value):
                raise ParameterError(key, f"{name} takes {expected[0]}, not {value!r}{example}")
            bad = _non_finite(value) if _FLOAT.search(info.type) else None
            if bad is not None:
                what = (
                    _short(bad) if bad is value else f"{_short(value)} holds {_short(bad)}, which"
                )
                fix = example or "; leave it out for the default"
                raise ParameterError(key, f"{what} is not a finite number{fix}")

    def create(self, name: str, **params: Any) -> T:
        """Instantiate ``name`` with ``params``; ``None`` values are dropped (timm style).

        An error of this package raised by the class (a :class:`ParameterError` naming the bad
        parameter, ...) passes unchanged; any other ``TypeError``/``ValueError`` becomes a
        :class:`ParameterError` naming the one parameter its message names, else ``name``."""
        params = {k: v for k, v in params.items() if v is not None}
        self.check_params(name, params)
        cls = self.get(name)
        try:
            return cls(**params)
        except RobustbenchLiteError:
            raise
        except (TypeError, ValueError) as exc:
            fields = [p.name for p in self.params(name)]
            param = _named_param(str(exc), params, fields)
            where = f" of {name}" if param else ""
            raise ParameterError(param or name, f"bad parameters{where} {params}: {exc}") from None


def import_submodules(package: str, path: Iterable[str]) -> list[ModuleType]:
    """Import every public module (name not starting with ``_``) of ``package``, whose folders
    are ``path`` (its ``__path__``), so that their registrations run; sorted by name."""
    return [
        importlib.import_module(f"{package}.{info.name}")
        for info in sorted(pkgutil.iter_modules(list(path)), key=lambda info: info.name)
        if not info.name.startswith("_")
    ]


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
        mine: set[str] = (
            set()
        )  # documented first by this class: its continuation lines belong to it
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
            if (
                sep
                and (arg_indent is None or indent <= arg_indent)
                and all(n.isidentifier() for n in params)
            ):
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


def _named_param(message: str, params: Mapping[str, Any], fields: Iterable[str]) -> str | None:
    """The one parameter ``message`` names: one of ``params``, else one of the other ``fields``
    (a required one the call missed); None when it names none or several."""
    for names in (list(params), [f for f in fields if f not in params]):
        named = [n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message)]
        if len(named) == 1:
            return named[0]
    return None


def _type_text(annotation: Any) -> str:
    """An annotation as text: ``"float | None"`` stays, the class ``float`` becomes ``"float"``
    (a module without ``from __future__ import annotations``), ``typing.X`` loses ``typing.``."""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


#: A ``float`` somewhere in a declared type (``float``, ``float | None``, ``tuple[float, ...]``).
_FLOAT = re.compile(r"(?<![\w.])float(?!\w)")


def _non_finite(value: Any, depth: int = 0) -> Any:
    """The first number in ``value`` (a number, or a list/tuple of them) that is NaN or
    infinite; None when there is none. Bools and strings are left to the type check."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return None if math.isfinite(value) else value
        except OverflowError:  # an int too large for a float (10**400) is not finite either
            return value
    if isinstance(value, (list, tuple)) and depth < 8:
        for item in value:
            bad = _non_finite(item, depth + 1)
            if bad is not None:
                return bad
    return None


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 400-digit int stays one short line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


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

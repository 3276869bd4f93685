"""YAML reading for suites: ``yaml.safe_load`` semantics plus the line number of every key.

The loader is a :class:`yaml.SafeLoader` subclass (never ``yaml.load`` with a full loader): it
builds :class:`LineDict` / :class:`LineList` containers that remember where each key or item
was written, so that schema errors can say ``suite.yaml:17 checks[2].params.stepz: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from robustbench_lite.core.errors import SuiteError


class LineDict(dict):
    """A mapping read from YAML; ``line`` is where it starts, ``key_lines[k]`` where ``k`` is."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    """A sequence read from YAML; ``line`` is where it starts, ``item_lines[i]`` where item i is."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records line numbers and rejects duplicate keys."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in out:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {out.key_lines[key]})",
                key_node.start_mark,
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def parse_yaml(text: str, source: str) -> Any:
    """Parse ``text`` safely; malformed YAML raises :class:`SuiteError` with line and column."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "malformed YAML"
        raise SuiteError(f"{where}: malformed YAML: {problem}; fix the YAML syntax there") from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"{source}: malformed YAML: {exc}") from None


@dataclass(frozen=True)
class Node:
    """A value in the suite with its dotted path and line, for error messages."""

    value: Any
    path: str
    line: int
    source: str

    def fail(self, message: str) -> NoReturn:
        """Raise ``SuiteError("source:line path: message")``."""
        where = f"{self.source}:{self.line}" if self.line else self.source
        raise SuiteError(f"{where} {self.path or '<top>'}: {message}")

    def child(self, key: Any) -> Node:
        """The node under ``key`` (a mapping key or a list index)."""
        v = self.value
        if isinstance(key, int) and isinstance(v, list):
            line = v.item_lines[key] if isinstance(v, LineList) else self.line
            return Node(v[key], f"{self.path}[{key}]", line, self.source)
        line = v.key_lines.get(key, self.line) if isinstance(v, LineDict) else self.line
        path = f"{self.path}.{key}" if self.path else str(key)
        return Node(v.get(key) if isinstance(v, dict) else None, path, line, self.source)

    def mapping(self, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Node]:
        """Check this is a mapping with only ``allowed`` keys; return the children by key."""
        from robustbench_lite.core.errors import did_you_mean

        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping with keys {', '.join(allowed)}, got {_kind(self.value)}")
        for key in self.value:
            if key not in allowed:
                bad = self.child(key)
                hint = did_you_mean(str(key), allowed) or f"; allowed keys are {', '.join(allowed)}"
                bad.fail(f"unknown key{hint}")
        for key in required:
            if key not in self.value:
                self.fail(f"missing required key {key!r}")
        return {str(k): self.child(k) for k in self.value}

    def typed(self, kind: type | tuple[type, ...], what: str) -> Any:
        """The value, checked to be of ``kind`` (bool is never accepted as a number)."""
        v = self.value
        numeric = kind in (int, float, (int, float))
        if (numeric and isinstance(v, bool)) or not isinstance(v, kind):
            self.fail(f"expected {what}, got {_kind(v)} {v!r}")
        return v


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"

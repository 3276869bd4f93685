"""YAML reading for suites: ``yaml.safe_load`` semantics plus the line number of every key.

The loader is a :class:`yaml.SafeLoader` subclass (never ``yaml.load`` with a full loader): it
builds :class:`LineDict` / :class:`LineList` containers that remember where each key or item
was written, so that schema errors can say ``suite.yaml:17 checks[2].params.stepz: ...``.

A suite file is untrusted input, so reading it is bounded: the text may be at most
``RBL_MAX_SUITE_BYTES`` bytes (1 MB by default), collections nest at most
:data:`MAX_DEPTH` deep, a document may use at most :data:`MAX_ALIASES` aliases (``*name``)
and its aliases may add at most :data:`MAX_ALIAS_NODES` nodes once expanded (a
"billion laughs" file is refused before anything is built), and messages show values
shortened to :data:`MAX_REPR` characters.
"""

from __future__ import annotations

import os
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


#: Environment variable that raises the size limit of a suite file (bytes).
MAX_SUITE_BYTES_ENV = "RBL_MAX_SUITE_BYTES"
#: Default size limit of a suite file: 1 MB (the built-in suites are about 1 KB).
DEFAULT_MAX_SUITE_BYTES = 1_000_000
#: Deepest nesting of mappings and lists (a suite needs about 5 levels).
MAX_DEPTH = 64
#: Most aliases (``*name``) in one suite file.
MAX_ALIASES = 1_000
#: Most nodes that aliases may add when expanded (a "billion laughs" adds 10^8 and more).
MAX_ALIAS_NODES = 100_000
#: Longest ``repr`` of a value quoted in an error message.
MAX_REPR = 200


def max_suite_bytes() -> int:
    """The size limit of a suite file: ``$RBL_MAX_SUITE_BYTES`` or 1 MB."""
    raw = os.environ.get(MAX_SUITE_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_SUITE_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise SuiteError(
            f"{MAX_SUITE_BYTES_ENV}={short_repr(raw)} is not a positive number of bytes; "
            f"unset it (default {DEFAULT_MAX_SUITE_BYTES}) or set it to an integer like 5000000"
        )
    return value


def short_repr(value: Any, limit: int = MAX_REPR) -> str:
    """``repr(value)``, cut to ``limit`` characters; never builds the repr of a huge container."""
    if isinstance(value, (dict, list, tuple, set)) and _too_big(value, limit):
        return f"{_kind(value)} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


def _too_big(value: Any, limit: int) -> bool:
    """Whether a container holds more than ``limit`` items counting nested ones (stops early)."""
    seen = 0
    stack = [value]
    while stack:
        v = stack.pop()
        items = v.values() if isinstance(v, dict) else v
        for item in items:
            seen += 1
            if seen > limit:
                return True
            if isinstance(item, (dict, list, tuple, set)):
                stack.append(item)
    return False


def shorten(message: str, limit: int = 1_000) -> str:
    """``message`` cut to ``limit`` characters (an error line stays readable)."""
    if len(message) <= limit:
        return message
    return f"{message[: limit - 30]}... ({len(message)} characters)"


class _LimitError(Exception):
    """A resource limit of :func:`parse_yaml` was hit at ``mark`` (a ``yaml.Mark`` or None)."""

    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records line numbers, rejects duplicate keys and bounds the document.

    Composition (text to node graph) is bounded in depth and alias count; the composed graph
    is measured with aliases expanded before anything is constructed.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _LimitError(
                    f"more than {MAX_ALIASES} aliases (*name); write the values out instead",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _LimitError(
                    f"mappings and lists nest deeper than {MAX_DEPTH} levels; "
                    "a suite needs only a few",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if self._aliases:
            _check_expansion(node)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases add more than :data:`MAX_ALIAS_NODES` nodes.

    Iterative (no recursion) and linear in the number of distinct nodes: each node's expanded
    size is computed once from its children's, capped so the numbers stay small.
    """
    cap = MAX_ALIAS_NODES + 1
    size: dict[int, int] = {}
    on_path: set[int] = set()
    first_big: yaml.Node | None = None  # the innermost node that expands past the cap
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size[key] = min(cap * 2, 1 + sum(size[id(c)] for c in _children(node)))
            if first_big is None and size[key] > cap:
                first_big = node
            continue
        if key in size:
            continue
        if key in on_path:
            raise _LimitError(
                "an alias refers to its own anchor (a recursive value)", node.start_mark
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    added = size[id(root)] - len(size)
    if added > MAX_ALIAS_NODES:
        raise _LimitError(
            f"its aliases (*name) expand to more than {MAX_ALIAS_NODES} extra values "
            '(a "billion laughs" file); write the values out instead',
            (first_big or root).start_mark,
        )


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # merged pairs (``<<: *anchor``) first, then the node's own
    n_merged = len(node.value) - own
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    own_keys: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in own_keys:  # a merged key may be overridden once by the node's own
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {short_repr(key)} (first on line {out.key_lines[key]})",
                key_node.start_mark,
            )
        if index >= n_merged:
            own_keys.add(key)
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
    """Parse ``text`` safely; malformed YAML raises :class:`SuiteError` with line and column.

    Too large, too deep or alias-bombed text raises :class:`SuiteError` naming the limit.
    """
    limit = max_suite_bytes()
    if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise SuiteError(
            f"{source}: the suite is {len(text.encode('utf-8', 'surrogatepass'))} bytes, over the "
            f"limit of {limit} bytes for suite files; split it, or raise the limit with "
            f"{MAX_SUITE_BYTES_ENV}=BYTES"
        )
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except _LimitError as exc:
        where = f"{source}:{exc.mark.line + 1}:{exc.mark.column + 1}" if exc.mark else source
        raise SuiteError(f"{where}: refused: {exc.message}") from None
    except RecursionError:
        raise SuiteError(f"{source}: refused: the YAML nests too deeply") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "malformed YAML"
        raise SuiteError(
            f"{where}: malformed YAML: {shorten(problem)}; fix the YAML syntax there"
        ) from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"{source}: malformed YAML: {shorten(str(exc))}") from None


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
        raise SuiteError(shorten(f"{where} {shorten(self.path, 200) or '<top>'}: {message}"))

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
            self.fail(f"expected {what}, got {_kind(v)} {short_repr(v)}")
        return v


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"

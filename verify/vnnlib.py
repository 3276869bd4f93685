"""VNNLIB parser: input boxes and output constraints with the two AND/OR levels of VNN-COMP.

The formula (the conjunction of all ``assert`` s) describes a *counterexample*: ``sat`` means
some input in the box drives the outputs into the constraint set. It is brought into DNF;
each disjunct must constrain inputs by bounds only (``X_i <= c``, ``X_i >= c``) and outputs by
linear inequalities. Strict and non-strict comparisons are treated alike (as VNN-COMP does).
Errors name the file and line: ``prop.vnnlib:12: unknown variable Z_3``.

A property file is untrusted input, so reading it is bounded and every limit is named in its
error with how to raise it:

- only a regular file is read (never a device or a FIFO), of at most ``RBL_MAX_VNNLIB_BYTES``
  bytes (32 MB by default), as UTF-8 text;
- parentheses nest at most :data:`MAX_DEPTH` deep;
- variable indices are below the network's input / output sizes when they are given
  (``read_vnnlib(path, n_inputs=..., n_outputs=...)``), and below :data:`MAX_INDEX` always;
- the DNF has at most ``RBL_MAX_VNNLIB_DISJUNCTS`` disjuncts (100000 by default), checked
  *while* it is expanded; one input box has at most ``RBL_MAX_VNNLIB_ROWS`` output constraint
  rows over all its disjuncts (10000 by default), and the arrays of the parsed property hold
  at most :data:`MAX_FLOATS` numbers;
- numbers are finite and at most :data:`MAX_MAGNITUDE` in size;
- a property whose every input box is empty (a lower bound above the upper one) is refused,
  since it would hold vacuously.

Conjunctions that do not branch (the input box, typically thousands of bounds) are kept once
and shared by every disjunct, so a large box with many output disjuncts stays linear in size.
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from robustbench_lite.core.errors import VnnlibError

from .properties import Case, Property

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_VAR = re.compile(r"^([XY])_(\d+)$")

#: Environment variable that raises the size limit of a VNNLIB file (bytes).
MAX_BYTES_ENV = "RBL_MAX_VNNLIB_BYTES"
DEFAULT_MAX_BYTES = 32_000_000
#: Environment variable that raises the limit on the number of DNF disjuncts.
MAX_DISJUNCTS_ENV = "RBL_MAX_VNNLIB_DISJUNCTS"
DEFAULT_MAX_DISJUNCTS = 100_000
#: Environment variable that raises the limit on output constraint rows per input box.
MAX_ROWS_ENV = "RBL_MAX_VNNLIB_ROWS"
#: Default limit on the output constraint rows of one input box, over all its disjuncts: the
#: falsifier scores every row on batches of about 4096 points (10000 rows: 330 MB).
DEFAULT_MAX_ROWS = 10_000
#: Deepest nesting of parentheses (VNN-COMP files use 4 or 5 levels).
MAX_DEPTH = 100
#: Largest variable index without a network to bound it (2^24, like the ONNX tensor limit).
MAX_INDEX = 1 << 24
#: Most numbers in the parsed property's arrays (boxes and constraint rows): 2^25, 256 MB.
MAX_FLOATS = 1 << 25
#: Largest magnitude of a number: beyond it float32 networks overflow and bounds lose meaning.
MAX_MAGNITUDE = 1e30


Sexp = str | list["Node"]  # the text of an atom, or a parenthesised list of nodes
Node = tuple[Sexp, int]  # a sexp with the line it starts on
Atom = tuple[dict[str, float], float, int]  # sum coef*var <= const, and its line
Chunk = list[Atom]  # a conjunction of atoms, shared by the disjuncts that contain it
Conj = tuple[Chunk, ...]  # one disjunct of the DNF: the conjunction of its chunks


def _env_limit(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise VnnlibError(
            f"{name}={raw[:40]!r} is not a positive integer; unset it (default {default}) "
            "or set it to a larger number"
        )
    return value


def _tokens(text: str) -> Iterator[tuple[str, int]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split(";", 1)[0]
        for m in _TOKEN.finditer(line):
            yield m.group(0), lineno


def _read(tokens: Iterator[tuple[str, int]], where: str) -> Iterator[tuple[list[Node], int]]:
    """Parse tokens into (sexp, line) top-level forms, each yielded when it closes, so a
    form is processed and dropped before the next is read (iterative, depth-capped)."""
    stack: list[tuple[list[Node], int]] = []
    for tok, line in tokens:
        if tok == "(":
            if len(stack) >= MAX_DEPTH:
                raise VnnlibError(
                    f"{where}:{line}: parentheses nest deeper than {MAX_DEPTH} levels; "
                    "VNNLIB properties need only a few"
                )
            stack.append(([], line))
        elif tok == ")":
            if not stack:
                raise VnnlibError(f"{where}:{line}: unbalanced ')'")
            lst, start = stack.pop()
            node = (lst, start)
            if stack:
                stack[-1][0].append(node)
            else:
                yield node
        else:
            if not stack:
                raise VnnlibError(f"{where}:{line}: {_short(tok)} outside parentheses")
            stack[-1][0].append((sys.intern(tok), line))
    if stack:
        raise VnnlibError(f"{where}:{stack[-1][1]}: '(' is never closed")


def _sane(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= MAX_MAGNITUDE


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


class _Parser:
    def __init__(
        self, where: str, n_inputs: int | None, n_outputs: int | None, max_disjuncts: int
    ) -> None:
        self.where = where
        self.n_x = 0
        self.n_y = 0
        self.declared: set[str] = set()
        self.limits = {"X": n_inputs, "Y": n_outputs}
        self.max_disjuncts = max_disjuncts

    def fail(self, line: int, msg: str) -> VnnlibError:
        return VnnlibError(f"{self.where}:{line}: {msg}")

    def number(self, text: str, line: int) -> float:
        try:
            value = float(text)
        except ValueError:
            raise self.fail(
                line,
                f"unknown variable or bad number {_short(text)}; declare it with "
                f"(declare-const {_short(text)[1:-1]} Real) before its first use",
            ) from None
        if not _sane(value):
            raise self.fail(
                line,
                f"number {_short(text)} is not finite or over {MAX_MAGNITUDE:g} in size; "
                "bounds and coefficients must be finite numbers a float32 network can use",
            )
        return value

    def linear(self, node: Node) -> tuple[dict[str, float], float]:
        """A term as ({var: coef}, const)."""
        val, line = node
        if isinstance(val, str):
            if val in self.declared:
                return {val: 1.0}, 0.0
            return {}, self.number(val, line)
        if not val or not isinstance(val[0][0], str):
            raise self.fail(line, "empty or malformed term")
        op, args = val[0][0], [self.linear(a) for a in val[1:]]
        if op == "+" and args:
            return _add(args, [1.0] * len(args))
        if op == "-" and args:
            return (
                _add(args, [1.0] + [-1.0] * (len(args) - 1))
                if len(args) > 1
                else _add(args, [-1.0])
            )
        if op == "*" and len(args) == 2:
            (ca, ka), (cb, kb) = args
            if ca and cb:
                raise self.fail(line, "product of two variables is not linear")
            coefs, k, other = (cb, ka, kb) if not ca else (ca, kb, ka)
            return {v: c * k for v, c in coefs.items()}, other * k
        raise self.fail(line, f"unsupported term operator {_short(op)}; use +, -, * with constants")

    def formula(self, node: Node) -> list[Conj]:
        """DNF as a list of conjunctions (each a tuple of shared chunks of atoms)."""
        val, line = node
        if isinstance(val, str) or not val or not isinstance(val[0][0], str):
            raise self.fail(line, "expected a formula like (<= X_0 1.0), (and ...) or (or ...)")
        op = val[0][0]
        if op in ("<=", ">=", "<", ">"):
            if len(val) != 3:
                raise self.fail(line, f"({op} ...) takes two terms, got {len(val) - 1}")
            (ca, ka), (cb, kb) = self.linear(val[1]), self.linear(val[2])
            lhs, rhs = (ca, cb), (kb - ka)
            if op in (">=", ">"):
                lhs, rhs = (cb, ca), (ka - kb)
            row = dict(lhs[0])
            for v, c in lhs[1].items():
                row[v] = row.get(v, 0.0) - c
            if not all(_sane(c) for c in row.values()) or not _sane(rhs):
                raise self.fail(
                    line, f"the constraint's numbers are not finite or over {MAX_MAGNITUDE:g}"
                )
            return [([(row, rhs, line)],)]
        if op == "and":
            return self.conjunction([self.formula(a) for a in val[1:]], line)
        if op == "or":
            parts = [self.formula(a) for a in val[1:]]
            self.check_count(sum(len(p) for p in parts), line)
            return [conj for p in parts for conj in p]
        raise self.fail(line, f"unsupported operator {_short(op)}; VNNLIB uses <=, >=, and, or")

    def conjunction(self, parts: list[list[Conj]], line: int) -> list[Conj]:
        """The DNF of ``(and parts...)``: parts without a choice merge into one shared chunk;
        the others multiply out, with the disjunct limit checked before anything is built."""
        if any(not p for p in parts):
            return []  # a false operand (an empty or) makes the conjunction false
        merged: Chunk = [atom for p in parts if len(p) == 1 for chunk in p[0] for atom in chunk]
        branching = [p for p in parts if len(p) > 1]
        total = 1
        for p in branching:
            total *= len(p)
            self.check_count(total, line)
        out: list[Conj] = [(merged,) if merged else ()]
        for p in branching:
            out = [a + b for a in out for b in p]
        return out

    def check_count(self, count: int, line: int) -> None:
        if count > self.max_disjuncts:
            raise self.fail(
                line,
                f"the formula's DNF has more than {self.max_disjuncts} disjuncts; simplify "
                f"the property, split it into several files, or raise the limit with "
                f"{MAX_DISJUNCTS_ENV}=N",
            )

    def declare(self, val: list[Node], line: int) -> None:
        if len(val) != 3 or not isinstance(val[1][0], str):
            raise self.fail(line, "write declarations as (declare-const X_0 Real)")
        name = val[1][0]
        m = _VAR.match(name)
        if not m:
            raise self.fail(
                line, f"variable {_short(name)} must be named X_i (inputs) or Y_i (outputs)"
            )
        kind, index = m.group(1), int(m.group(2))
        size = self.limits[kind]
        if size is not None and index >= size:
            role = "inputs" if kind == "X" else "outputs"
            raise self.fail(
                line,
                f"{name} is beyond the network's {size} {role} ({kind}_0 to {kind}_{size - 1}); "
                "use a property written for this network",
            )
        if index >= MAX_INDEX:
            raise self.fail(
                line, f"{name}: variable indices must be below {MAX_INDEX} (2^24) in a property"
            )
        self.declared.add(name)
        if kind == "X":
            self.n_x = max(self.n_x, index + 1)
        else:
            self.n_y = max(self.n_y, index + 1)


def _add(
    args: list[tuple[dict[str, float], float]], signs: list[float]
) -> tuple[dict[str, float], float]:
    coefs: dict[str, float] = {}
    const = 0.0
    for (c, k), s in zip(args, signs):
        for v, a in c.items():
            coefs[v] = coefs.get(v, 0.0) + s * a
        const += s * k
    return coefs, const


def max_disjuncts() -> int:
    """The DNF size limit: ``$RBL_MAX_VNNLIB_DISJUNCTS`` or 100000."""
    return _env_limit(MAX_DISJUNCTS_ENV, DEFAULT_MAX_DISJUNCTS)


def max_bytes() -> int:
    """The file size limit: ``$RBL_MAX_VNNLIB_BYTES`` or 32 MB."""
    return _env_limit(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)


def parse_vnnlib(
    text: str,
    *,
    where: str = "<vnnlib>",
    n_inputs: int | None = None,
    n_outputs: int | None = None,
) -> Property:
    """Parse VNNLIB ``text`` into a :class:`Property` (cases of input box + output DNF).

    ``n_inputs`` / ``n_outputs`` (the network's sizes, when known) bound the variable indices.
    """
    p = _Parser(where, n_inputs, n_outputs, max_disjuncts())
    parts: list[list[Conj]] = []  # asserts with a choice (an or)
    common: Chunk = []  # the atoms of the asserts without one (the box, typically)
    last = 1
    for val, line in _read(_tokens(text), where):
        if not val or not isinstance(val[0][0], str):
            raise p.fail(line, "expected (declare-const ...) or (assert ...)")
        head = val[0][0]
        if head == "declare-const":
            p.declare(val, line)
        elif head == "assert":
            if len(val) != 2:
                raise p.fail(line, "(assert ...) takes exactly one formula")
            dnf = p.formula(val[1])  # variables are declared before their use
            if len(dnf) == 1:
                common.extend(atom for chunk in dnf[0] for atom in chunk)
            else:
                parts.append(dnf)
            last = line
        else:
            raise p.fail(line, f"unknown command {_short(head)}; expected declare-const or assert")
    if p.n_x == 0 or p.n_y == 0:
        raise VnnlibError(f"{where}:1: no X_i or no Y_i variables are declared")
    dnf = p.conjunction([[(common,)], *parts], last)
    if not dnf:
        raise VnnlibError(
            f"{where}:1: the formula is false by construction (an empty (or)), so the "
            "property would hold vacuously; write at least one disjunct"
        )
    return _to_property(p, dnf, where)


class _Summary:
    """One chunk's input bounds, output rows and whether it holds a constant false row."""

    def __init__(self, p: _Parser, chunk: Chunk) -> None:
        self.lo: dict[int, tuple[float, int]] = {}  # index -> (bound, line)
        self.hi: dict[int, tuple[float, int]] = {}
        self.rows: list[tuple[dict[int, float], float]] = []
        for coefs, const, line in chunk:
            xs = [v for v in coefs if v.startswith("X") and coefs[v] != 0]
            ys = [v for v in coefs if v.startswith("Y") and coefs[v] != 0]
            if xs and ys:
                raise p.fail(
                    line,
                    "a constraint mixes inputs X and outputs Y; only output constraints may be general",
                )
            if xs:
                if len(xs) != 1:
                    raise p.fail(line, "input constraints must be bounds on a single X_i")
                i, c = int(xs[0][2:]), coefs[xs[0]]
                bound = const / c  # rounded outward unless exact, so the box never shrinks
                if not _sane(bound):
                    raise p.fail(line, f"the bound on {xs[0]} is over {MAX_MAGNITUDE:g}")
                if c > 0:
                    b = bound if abs(c) == 1 else float(np.nextafter(bound, np.inf))
                    if i not in self.hi or b < self.hi[i][0]:
                        self.hi[i] = (b, line)
                else:
                    b = bound if abs(c) == 1 else float(np.nextafter(bound, -np.inf))
                    if i not in self.lo or b > self.lo[i][0]:
                        self.lo[i] = (b, line)
            elif ys:
                row: dict[int, float] = {}
                for v, c in coefs.items():
                    row[int(v[2:])] = row.get(int(v[2:]), 0.0) + c
                self.rows.append((row, const))
            elif const < 0:
                self.rows.append(({}, const))  # constant false row: 0 <= const < 0


def _to_property(p: _Parser, dnf: list[Conj], where: str) -> Property:
    summaries: dict[int, _Summary] = {}
    for conj in dnf:
        for chunk in conj:
            if id(chunk) not in summaries:
                summaries[id(chunk)] = _Summary(p, chunk)
    # each disjunct's box is decided by the chunks that bound inputs; equal sets share a box
    box_keys: list[tuple[int, ...]] = []
    n_floats = 0
    for conj in dnf:
        key = tuple(id(c) for c in conj if summaries[id(c)].lo or summaries[id(c)].hi)
        box_keys.append(key)
        n_floats += sum(len(summaries[id(c)].rows) for c in conj) * p.n_y
    distinct = list(dict.fromkeys(box_keys))
    n_floats += 2 * p.n_x * len(distinct)
    if n_floats > MAX_FLOATS:
        raise VnnlibError(
            f"{where}:1: the property needs {n_floats} numbers ({len(distinct)} input boxes of "
            f"{p.n_x} inputs, constraint rows over {p.n_y} outputs), over the limit of "
            f"{MAX_FLOATS}; split it into several files, or lower {MAX_DISJUNCTS_ENV}"
        )
    boxes = {key: _box(p, [summaries[k] for k in key], where) for key in distinct}
    if all(isinstance(box, str) for box in boxes.values()):
        raise VnnlibError(
            f"{where}:{boxes[distinct[0]]}; every input box is empty, so the property would "
            "hold vacuously: fix the bounds"
        )
    cases: dict[tuple[bytes, bytes], list[tuple[np.ndarray, np.ndarray]]] = {}
    arrays: dict[tuple[bytes, bytes], tuple[np.ndarray, np.ndarray]] = {}
    n_rows: dict[tuple[bytes, bytes], int] = {}
    row_limit = _env_limit(MAX_ROWS_ENV, DEFAULT_MAX_ROWS)
    for conj, key in zip(dnf, box_keys):
        box = boxes[key]
        if isinstance(box, str):
            continue  # an empty box: this disjunct cannot be satisfied
        lo, hi = box
        rows = [row for c in conj for row in summaries[id(c)].rows]
        bkey = (lo.tobytes(), hi.tobytes())
        n_rows[bkey] = n_rows.get(bkey, 0) + max(len(rows), 1)
        if n_rows[bkey] > row_limit:
            raise VnnlibError(
                f"{where}:1: one input box has more than {row_limit} output constraint rows over "
                f"its {len(dnf)} disjuncts; simplify the output formula, split it into several "
                f"files, or raise the limit with {MAX_ROWS_ENV}=N"
            )
        C = np.zeros((len(rows), p.n_y))
        for r, (coefs, _) in enumerate(rows):
            for j, c in coefs.items():
                C[r, j] += c
        d = np.array([const for _, const in rows], dtype=np.float64)
        arrays.setdefault(bkey, (lo, hi))
        cases.setdefault(bkey, []).append((C, d))
    return Property(
        n_inputs=p.n_x,
        n_outputs=p.n_y,
        cases=tuple(Case(arrays[k][0], arrays[k][1], tuple(v)) for k, v in cases.items()),
    )


def _box(p: _Parser, parts: list[_Summary], where: str) -> tuple[np.ndarray, np.ndarray] | str:
    """The box ``(lo, hi)`` of one set of bounding chunks; a message if it is empty."""
    lo: dict[int, tuple[float, int]] = {}
    hi: dict[int, tuple[float, int]] = {}
    for s in parts:
        for i, (b, line) in s.lo.items():
            if i not in lo or b > lo[i][0]:
                lo[i] = (b, line)
        for i, (b, line) in s.hi.items():
            if i not in hi or b < hi[i][0]:
                hi[i] = (b, line)
    if len(lo) < p.n_x or len(hi) < p.n_x:
        missing = next(i for i in range(p.n_x) if i not in lo or i not in hi)
        raise VnnlibError(
            f"{where}:1: input X_{missing} has no lower or upper bound; every X_i needs both"
        )
    lo_arr = np.array([lo[i][0] for i in range(p.n_x)], dtype=np.float64)
    hi_arr = np.array([hi[i][0] for i in range(p.n_x)], dtype=np.float64)
    bad = np.flatnonzero(lo_arr > hi_arr)
    if bad.size:
        i = int(bad[0])
        return (
            f"{max(lo[i][1], hi[i][1])}: input X_{i} has lower bound {lo[i][0]!r} above its "
            f"upper bound {hi[i][0]!r} (an empty box)"
        )
    return lo_arr, hi_arr


def read_vnnlib(
    path: str | Path, *, n_inputs: int | None = None, n_outputs: int | None = None
) -> Property:
    """Parse the VNNLIB file at ``path`` (errors carry ``path:line``).

    Only a regular file of at most ``RBL_MAX_VNNLIB_BYTES`` bytes of UTF-8 text is read;
    ``n_inputs`` / ``n_outputs`` bound the variable indices (see :func:`parse_vnnlib`).
    """
    path = Path(path)
    return parse_vnnlib(
        _read_text(path, max_bytes()), where=str(path), n_inputs=n_inputs, n_outputs=n_outputs
    )


def _read_text(path: Path, limit: int) -> str:
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise VnnlibError(f"{path}: cannot read the VNNLIB file ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a folder"
                if stat.S_ISDIR(info.st_mode)
                else "a FIFO"
                if stat.S_ISFIFO(info.st_mode)
                else "a device or special file"
            )
            raise VnnlibError(f"{path}: is {kind}, not a regular file; give a .vnnlib file")
        if info.st_size > limit:
            raise VnnlibError(_too_big(path, info.st_size, limit))
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise VnnlibError(_too_big(path, size, limit))
    except OSError as exc:
        raise VnnlibError(f"{path}: cannot read the VNNLIB file ({exc.strerror})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if data[:2] == b"\x1f\x8b":
        raise VnnlibError(f"{path}: is gzip-compressed; decompress it first (gunzip)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VnnlibError(
            f"{path}: is not a text file (byte {exc.start} is not UTF-8); a VNNLIB file is "
            "plain text"
        ) from None
    if "\x00" in text:
        raise VnnlibError(f"{path}: is not a text file (it contains NUL bytes)")
    return text


def _too_big(path: Path, size: int, limit: int) -> str:
    return (
        f"{path}: the file is {size} bytes or more, over the limit of {limit} bytes for VNNLIB "
        f"files; raise it with {MAX_BYTES_ENV}=BYTES if the file is meant to be that large"
    )

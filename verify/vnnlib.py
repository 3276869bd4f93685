"""VNNLIB parser: input boxes and output constraints with the two AND/OR levels of VNN-COMP.

The formula (the conjunction of all ``assert`` s) describes a *counterexample*: ``sat`` means
some input in the box drives the outputs into the constraint set. It is brought into DNF;
each disjunct must constrain inputs by bounds only (``X_i <= c``, ``X_i >= c``) and outputs by
linear inequalities. Strict and non-strict comparisons are treated alike (as VNN-COMP does).
Errors name the file and line: ``prop.vnnlib:12: unknown variable Z_3``.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from robustbench_lite.core.errors import VnnlibError

from .properties import Case, Property

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_VAR = re.compile(r"^([XY])_(\d+)$")


Sexp = str | list["Node"]  # the text of an atom, or a parenthesised list of nodes
Node = tuple[Sexp, int]  # a sexp with the line it starts on


def _tokens(text: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split(";", 1)[0]
        out.extend((m.group(0), lineno) for m in _TOKEN.finditer(line))
    return out


def _read(tokens: list[tuple[str, int]], where: str) -> list[tuple[list[Node], int]]:
    """Parse tokens into a list of (sexp, line) top-level forms."""
    stack: list[tuple[list[Node], int]] = []
    forms: list[tuple[list[Node], int]] = []
    for tok, line in tokens:
        if tok == "(":
            stack.append(([], line))
        elif tok == ")":
            if not stack:
                raise VnnlibError(f"{where}:{line}: unbalanced ')'")
            lst, start = stack.pop()
            node = (lst, start)
            if stack:
                stack[-1][0].append(node)
            else:
                forms.append(node)
        else:
            if not stack:
                raise VnnlibError(f"{where}:{line}: {tok!r} outside parentheses")
            stack[-1][0].append((tok, line))
    if stack:
        raise VnnlibError(f"{where}:{stack[-1][1]}: '(' is never closed")
    return forms


class _Parser:
    def __init__(self, where: str) -> None:
        self.where = where
        self.n_x = 0
        self.n_y = 0
        self.declared: set[str] = set()

    def fail(self, line: int, msg: str) -> VnnlibError:
        return VnnlibError(f"{self.where}:{line}: {msg}")

    def linear(self, node: Node) -> tuple[dict[str, float], float]:
        """A term as ({var: coef}, const)."""
        val, line = node
        if isinstance(val, str):
            if val in self.declared:
                return {val: 1.0}, 0.0
            try:
                return {}, float(val)
            except ValueError:
                raise self.fail(
                    line,
                    f"unknown variable or bad number {val!r}; declare it with (declare-const {val} Real)",
                ) from None
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
        raise self.fail(line, f"unsupported term operator {op!r}; use +, -, * with constants")

    def formula(self, node: Node) -> list[list[tuple[dict[str, float], float, int]]]:
        """DNF: a list of conjunctions of ``sum coef*var <= const`` rows (with line)."""
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
            return [[(row, rhs, line)]]
        if op == "and":
            parts = [self.formula(a) for a in val[1:]]
            return [sum(combo, []) for combo in itertools.product(*parts)]
        if op == "or":
            return [conj for a in val[1:] for conj in self.formula(a)]
        raise self.fail(line, f"unsupported operator {op!r}; VNNLIB uses <=, >=, and, or")

    def declare(self, val: list[Node], line: int) -> None:
        if len(val) != 3 or not isinstance(val[1][0], str):
            raise self.fail(line, "write declarations as (declare-const X_0 Real)")
        name = val[1][0]
        m = _VAR.match(name)
        if not m:
            raise self.fail(line, f"variable {name!r} must be named X_i (inputs) or Y_i (outputs)")
        self.declared.add(name)
        if m.group(1) == "X":
            self.n_x = max(self.n_x, int(m.group(2)) + 1)
        else:
            self.n_y = max(self.n_y, int(m.group(2)) + 1)


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


def parse_vnnlib(text: str, *, where: str = "<vnnlib>") -> Property:
    """Parse VNNLIB ``text`` into a :class:`Property` (cases of input box + output DNF)."""
    p = _Parser(where)
    asserts: list[Node] = []
    for val, line in _read(_tokens(text), where):
        if not val or not isinstance(val[0][0], str):
            raise p.fail(line, "expected (declare-const ...) or (assert ...)")
        head = val[0][0]
        if head == "declare-const":
            p.declare(val, line)
        elif head == "assert":
            if len(val) != 2:
                raise p.fail(line, "(assert ...) takes exactly one formula")
            asserts.append(val[1])
        else:
            raise p.fail(line, f"unknown command {head!r}; expected declare-const or assert")
    if p.n_x == 0 or p.n_y == 0:
        raise VnnlibError(f"{where}:1: no X_i or no Y_i variables are declared")
    dnf: list[list] = [[]]
    for node in asserts:
        part = p.formula(node)
        dnf = [a + b for a in dnf for b in part]
        if len(dnf) > 100_000:
            raise VnnlibError(
                f"{where}:{node[1]}: the formula's DNF has more than 100000 disjuncts"
            )
    return _to_property(p, dnf, where)


def _to_property(p: _Parser, dnf: list[list], where: str) -> Property:
    cases: dict[tuple[bytes, bytes], list[tuple[np.ndarray, np.ndarray]]] = {}
    boxes: dict[tuple[bytes, bytes], tuple[np.ndarray, np.ndarray]] = {}
    for conj in dnf:
        lo, hi = np.full(p.n_x, -np.inf), np.full(p.n_x, np.inf)
        rows, rhs = [], []
        for coefs, const, line in conj:
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
                if c > 0:
                    hi[i] = min(hi[i], bound if abs(c) == 1 else np.nextafter(bound, np.inf))
                else:
                    lo[i] = max(lo[i], bound if abs(c) == 1 else np.nextafter(bound, -np.inf))
            elif ys:
                row = np.zeros(p.n_y)
                for v, c in coefs.items():
                    row[int(v[2:])] += c
                rows.append(row)
                rhs.append(const)
            elif const < 0:
                rows.append(np.zeros(p.n_y))  # constant false row: 0 <= const < 0
                rhs.append(const)
        if not np.isfinite(lo).all() or not np.isfinite(hi).all():
            missing = int(np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))[0])
            raise VnnlibError(
                f"{where}:1: input X_{missing} has no lower or upper bound; every X_i needs both"
            )
        if (lo > hi).any():
            continue  # empty box: this disjunct cannot be satisfied
        key = (lo.tobytes(), hi.tobytes())
        boxes[key] = (lo, hi)
        C = np.array(rows).reshape(len(rows), p.n_y)
        cases.setdefault(key, []).append((C, np.array(rhs, dtype=np.float64)))
    return Property(
        n_inputs=p.n_x,
        n_outputs=p.n_y,
        cases=tuple(Case(boxes[k][0], boxes[k][1], tuple(v)) for k, v in cases.items()),
    )


def read_vnnlib(path: str | Path) -> Property:
    """Parse the VNNLIB file at ``path`` (errors carry ``path:line``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise VnnlibError(f"{path}: cannot read the VNNLIB file ({exc.strerror})") from None
    return parse_vnnlib(text, where=str(path))

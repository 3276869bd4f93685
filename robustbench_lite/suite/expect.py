"""Expectations of a check (``robust_accuracy: ">= 0.40"``); the metric names each kind of check
may expect are the kind's (``suite.kinds``)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustbench_lite.core.errors import SuiteError, did_you_mean

OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPR = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\S.*?)\s*$")


@dataclass(frozen=True)
class Expect:
    """``metric op value``, e.g. ``robust_accuracy >= 0.4`` or ``flagged == False``."""

    metric: str
    op: str
    value: float | bool

    def holds(self, actual: Any) -> bool:
        """True when ``actual`` meets the expectation; a missing or NaN value never does."""
        if actual is None or (isinstance(actual, float) and math.isnan(actual)):
            return False
        return bool(OPS[self.op](actual, self.value))

    def __str__(self) -> str:
        value = str(self.value).lower() if isinstance(self.value, bool) else f"{self.value:g}"
        return f"{self.metric} {self.op} {value}"


def parse_expect(metric: str, raw: Any, allowed: tuple[str, ...]) -> Expect:
    """Parse one expectation; raises :class:`SuiteError` (without location) on bad input."""
    if metric not in allowed:
        hint = did_you_mean(metric, allowed) or ""
        raise SuiteError(
            f"this check does not produce {metric!r}{hint}; it produces {', '.join(allowed)}"
        )
    if isinstance(raw, bool):
        return Expect(metric, "==", raw)
    if isinstance(raw, (int, float)):
        raise SuiteError(f'{raw!r} has no operator; write e.g. ">= {raw}" (quoted)')
    if not isinstance(raw, str):
        raise SuiteError(f'{raw!r}: write an expectation as a string such as ">= 0.4"')
    match = _EXPR.match(raw)
    if not match:
        raise SuiteError(
            f'{raw!r}: bad operator; write one of {" ".join(OPS)} then a number, e.g. ">= 0.4"'
        )
    op, text = match.groups()
    if text.lower() in ("true", "false"):
        if op not in ("==", "!="):
            raise SuiteError(f"{raw!r}: compare true/false with == or !=")
        return Expect(metric, op, text.lower() == "true")
    try:
        num, _, den = text.partition("/")
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise SuiteError(f'{raw!r}: {text!r} is not a number; write e.g. ">= 0.4"') from None
    if not math.isfinite(value):
        raise SuiteError(f"{raw!r}: the bound must be a finite number")
    return Expect(metric, op, value)

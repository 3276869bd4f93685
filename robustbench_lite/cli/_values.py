"""One line of report values for the single-component commands (``attack``, ``verify``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def values_line(values: Mapping[str, Any], skip: Collection[str] = ()) -> str:
    """``name value`` pairs of ``values`` not in ``skip``, two spaces apart ('' for none);
    numbers as the reports write them (4 decimals)."""
    from robustbench_lite.report.formats import plain, value_text

    return plain("  ".join(f"{k} {value_text(v)}" for k, v in values.items() if k not in skip))

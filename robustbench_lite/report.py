"""Report and CheckResult: the JSON contract ``robustbench_lite.report/1`` and its renderings."""

from __future__ import annotations

import functools
import json
import math
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "robustbench_lite.report/1"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Args:
        id: the check's id in its suite.
        kind: ``clean``, ``attack``, ``verify`` or ``detect``.
        component: registry name of the attack/verifier/detector (None for clean checks).
        threat: the threat's name, if any.
        passed: every expectation held.
        values: metrics, e.g. ``{"clean_accuracy": 0.98, "robust_accuracy": 0.61}``.
        expect: the expectations as text, e.g. ``("robust_accuracy >= 0.4",)``.
        elapsed_s: wall time of the check in seconds.
        detail: anything else worth keeping (per-cell detail, triggers, counterexamples).
    """

    id: str
    kind: str
    component: str | None
    threat: str | None
    passed: bool
    values: Mapping[str, Any]
    expect: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The check as a JSON-ready dict."""
        return {
            "id": self.id,
            "kind": self.kind,
            "component": self.component,
            "threat": self.threat,
            "passed": self.passed,
            "values": {k: _jsonable(v) for k, v in self.values.items()},
            "expect": list(self.expect),
            "elapsed_s": round(self.elapsed_s, 4),
            "detail": {k: _jsonable(v) for k, v in self.detail.items()},
        }


@dataclass(frozen=True)
class Report:
    """All check results of one run, plus the environment that produced them."""

    suite: str
    model: str
    results: tuple[CheckResult, ...]
    env: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict following :data:`SCHEMA`."""
        return {
            "schema": SCHEMA,
            "suite": self.suite,
            "model": self.model,
            "passed": self.passed,
            "checks": [r.to_dict() for r in self.results],
            "env": dict(self.env),
        }

    def to_json(self) -> str:
        """Pretty JSON (NaN written as null)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def to_markdown(self) -> str:
        """A Markdown summary (see :mod:`robustbench_lite.report_formats`)."""
        from robustbench_lite.report_formats import to_markdown

        return to_markdown(self)

    def to_junit(self) -> str:
        """JUnit XML, one testcase per check (see :mod:`robustbench_lite.report_formats`)."""
        from robustbench_lite.report_formats import to_junit

        return to_junit(self)

    def to_html(self) -> str:
        """One self-contained HTML page with figures (see :mod:`robustbench_lite.report_html`)."""
        from robustbench_lite.report_html import to_html

        return to_html(self)

    def to_table(self) -> str:
        """A plain-text table: one row per check with its main values."""
        header = ("check", "kind", "threat", "clean_acc", "robust_acc", "time_s", "result")
        rows = [header]
        for r in self.results:
            rows.append((
                r.id, r.kind, r.threat or "-",
                _fmt(r.values.get("clean_accuracy")), _fmt(r.values.get("robust_accuracy")),
                format_seconds(r.elapsed_s), "PASS" if r.passed else "FAIL",
            ))  # fmt: skip
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def environment(**extra: Any) -> dict[str, Any]:
    """Versions and machine facts recorded with every report."""
    import numpy
    import torch

    from robustbench_lite import __version__

    return {
        "robustbench_lite": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        **({"git_sha": sha} if (sha := _git_sha(os.getcwd())) else {}),
        **extra,
    }


@functools.lru_cache(maxsize=8)
def _git_sha(cwd: str) -> str | None:
    """HEAD of the git checkout at ``cwd`` (the user's project), or None outside one; asked once
    per folder and process, since every report of a run records it."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5)  # fmt: skip
    except (OSError, subprocess.SubprocessError):  # no git binary, or it hung
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename (no half-written reports)."""
    from robustbench_lite.zoo import atomic_write_bytes

    atomic_write_bytes(Path(path), text.encode())


def format_seconds(seconds: float) -> str:
    """Wall time for tables: two decimals under 10 s (a fast check is not shown as 0.0)."""
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

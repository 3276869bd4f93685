"""Report and CheckResult: the JSON contract ``robustbench_lite.report/1``; renderings live in
:mod:`robustbench_lite.report.formats`."""

from __future__ import annotations

import functools
import math
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "robustbench_lite.report/1"

#: A check's verdict: ``pass`` and ``fail`` only for checks with an expectation (or a
#: cross-check that failed them); a check with no expectation only ``measured`` its values.
PASS, FAIL, MEASURED = "pass", "fail", "measured"


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
        reused: every cell of the check came from the results store (a resumed run), so its
            values and ``elapsed_s`` are those of the earlier run.
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
    reused: bool = False

    @property
    def verdict(self) -> str:
        """``fail`` when an expectation (or a cross-check) failed, ``pass`` when the check has
        expectations and all held, else ``measured``: values without a threshold are no PASS."""
        if not self.passed:
            return FAIL
        return PASS if self.expect else MEASURED

    def to_dict(self) -> dict[str, Any]:
        """The check as a JSON-ready dict (``passed`` stays for readers of older reports;
        ``verdict`` tells a pass from a measurement)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "component": self.component,
            "threat": self.threat,
            "passed": self.passed,
            "verdict": self.verdict,
            "reused": self.reused,
            "values": {k: jsonable(v) for k, v in self.values.items()},
            "expect": list(self.expect),
            "elapsed_s": round(self.elapsed_s, 4),
            "detail": {k: jsonable(v) for k, v in self.detail.items()},
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

    @property
    def verdict(self) -> str:
        """``fail`` when a check failed, ``pass`` when some check passed an expectation and
        none failed, ``measured`` when no check has an expectation."""
        verdicts = {r.verdict for r in self.results}
        return FAIL if FAIL in verdicts else (PASS if PASS in verdicts else MEASURED)

    def count(self, verdict: str) -> int:
        """How many checks have ``verdict`` (``pass``, ``fail`` or ``measured``)."""
        return sum(r.verdict == verdict for r in self.results)

    @property
    def reused_checks(self) -> int:
        """How many checks were taken whole from the results store."""
        return sum(r.reused for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict following :data:`SCHEMA`."""
        return {
            "schema": SCHEMA,
            "suite": self.suite,
            "model": self.model,
            "passed": self.passed,
            "verdict": self.verdict,
            "checks": [r.to_dict() for r in self.results],
            **({"scaling": sweeps} if (sweeps := self.scaling()) else {}),
            "env": dict(self.env),
        }

    def scaling(self) -> list[dict[str, Any]]:
        """The robustness-scaling metrics of every eps sweep (power-law fit, tilting angle,
        masking flags; :mod:`robustbench_lite.report.scaling`), as JSON-ready dicts."""
        from robustbench_lite.report.scaling import scaling_dicts

        return [jsonable(s) for s in scaling_dicts(self.results)]

    def to_json(self) -> str:
        """Pretty JSON (NaN written as null)."""
        return self.render("json")

    def to_markdown(self) -> str:
        """A Markdown summary (see :mod:`robustbench_lite.report.formats`)."""
        return self.render("md")

    def to_junit(self) -> str:
        """JUnit XML, one testcase per check (see :mod:`robustbench_lite.report.formats`)."""
        return self.render("junit")

    def to_html(self) -> str:
        """One self-contained HTML page with figures (see :mod:`robustbench_lite.report.html`)."""
        return self.render("html")

    def to_table(self) -> str:
        """A plain-text table: one row per check with its main values."""
        from robustbench_lite.report.formats import to_table

        return to_table(self)

    def render(self, fmt: str) -> str:
        """This report in the registered format ``fmt`` (table, json, md, junit, html, ...)."""
        from robustbench_lite.report.formats import render

        return render(self, fmt)


def environment(**extra: Any) -> dict[str, Any]:
    """Versions and machine facts recorded with every report."""
    import numpy
    import torch

    from robustbench_lite.core.version import __version__

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
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):  # no git binary, or it hung
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


def jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

"""``robustbench-lite history [--model NAME] [--db PATH]``: past runs from the results store."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from robustbench_lite.cli._common import positive_int
from robustbench_lite.report.formats import plain

NAME = "history"
HELP = "list past runs of suites (optionally of one model) from the results store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name (e.g. zoo:digits-cnn) or fingerprint prefix")
    p.add_argument("--suite", help="suite name")
    p.add_argument(
        "--db", metavar="PATH", help="results store (default: the cache's results.sqlite)"
    )
    p.add_argument("--limit", type=positive_int, default=20, help="newest N runs (default 20)")


def run(args: argparse.Namespace) -> int:
    from robustbench_lite.core.errors import RobustbenchLiteError
    from robustbench_lite.suite.store import ResultStore, default_db_path

    path = args.db or default_db_path(None)
    from pathlib import Path

    file = Path(path).expanduser()
    if not file.is_file() or file.stat().st_size == 0:  # history reads; it never creates one
        raise RobustbenchLiteError(
            f"no results store at {path}; run a suite first or pass --db PATH"
        )
    with ResultStore(path) as store:
        runs = store.history(model=args.model, suite=args.suite, limit=args.limit)
    if not runs:
        which = " and ".join(
            f"{k} {v}" for k, v in (("model", args.model), ("suite", args.suite)) if v
        )
        print(
            f"no past runs{' of ' + which if which else ''} in {path}; `robustbench-lite history` lists them all"
        )
        return 0
    rows = [
        (
            "run",
            "finished (UTC)",
            "suite",
            "model",
            "fingerprint",
            "seed",
            "cells",
            "result",
            "main values",
        )
    ]
    for r in runs:
        when = dt.datetime.fromtimestamp(r.finished, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            (
                str(r.id),
                when,
                r.suite,
                r.model,
                r.model_fingerprint[:12],
                str(r.seed),
                f"{r.cells_run}+{r.cells_resumed}",
                _verdict(r.report, r.passed),
                _summary(r.report),
            )
        )
    cells = [[plain(c) for c in row] for row in rows]  # no terminal escapes from names
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def _summary(report_json: str) -> str:
    """The main value of each check of a stored report (the store checked it is a JSON object;
    anything else in it is skipped, never a crash)."""
    doc = json.loads(report_json)
    checks = doc.get("checks") if isinstance(doc, dict) else None
    parts = []
    for c in checks if isinstance(checks, list) else []:
        v: Any = c.get("values") if isinstance(c, dict) else None
        if not isinstance(v, dict):
            continue
        key = next(
            (
                k
                for k in ("robust_accuracy", "verified_fraction", "clean_accuracy", "flagged")
                if k in v
            ),
            None,
        )
        if key is not None and v[key] is not None:
            value = v[key]
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)[:20]
            parts.append(f"{str(c.get('id'))[:60]}={shown}")
    return " ".join(parts)


def _verdict(report: str, passed: bool) -> str:
    """The stored report's verdict (``measured`` when no check had an expectation); reports
    written before verdicts existed fall back to pass/fail."""
    import json

    try:
        verdict = json.loads(report).get("verdict")
    except (ValueError, AttributeError):
        verdict = None
    if verdict in ("pass", "fail", "measured"):
        return str(verdict)
    return "pass" if passed else "fail"

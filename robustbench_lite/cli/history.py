"""``robustbench-lite history [--model NAME] [--db PATH]``: past runs from the results store."""

from __future__ import annotations

import argparse
import datetime as dt
import json

NAME = "history"
HELP = "list past runs of suites (optionally of one model) from the results store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name (e.g. zoo:digits-cnn) or fingerprint prefix")
    p.add_argument("--suite", help="suite name")
    p.add_argument(
        "--db", metavar="PATH", help="results store (default: the cache's results.sqlite)"
    )
    p.add_argument("--limit", type=int, default=20, help="newest N runs (default 20)")


def run(args: argparse.Namespace) -> int:
    from robustbench_lite.core.errors import RobustbenchLiteError
    from robustbench_lite.suite.store import ResultStore, default_db_path

    path = args.db or default_db_path(None)
    from pathlib import Path

    if not Path(path).expanduser().is_file():
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
                "PASS" if r.passed else "FAIL",
                _summary(r.report),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def _summary(report_json: str) -> str:
    checks = json.loads(report_json).get("checks", [])
    parts = []
    for c in checks:
        v = c.get("values", {})
        key = next(
            (
                k
                for k in ("robust_accuracy", "verified_fraction", "clean_accuracy", "flagged")
                if k in v
            ),
            None,
        )
        if key is not None and v[key] is not None:
            parts.append(
                f"{c['id']}={v[key]:.3f}" if isinstance(v[key], float) else f"{c['id']}={v[key]}"
            )
    return " ".join(parts)

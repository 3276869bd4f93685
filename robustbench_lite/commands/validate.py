"""``robustbench-lite validate SUITE``: the strict schema pass only (no model, no data, no torch work)."""

from __future__ import annotations

import argparse

NAME = "validate"
HELP = "check a suite file (schema, components, parameters, threats, expectations) without running it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", metavar="SUITE", help="suite YAML file or builtin:NAME")


def run(args: argparse.Namespace) -> int:
    from robustbench_lite.suite import load_suite

    suite = load_suite(args.suite)
    kinds = sorted({c.kind for c in suite.checks})
    print(f"ok: {args.suite}: suite {suite.name!r}, {len(suite.checks)} checks ({', '.join(kinds)})")
    return 0

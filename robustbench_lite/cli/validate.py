"""``robustbench-lite validate SUITE``: the strict schema pass only (no model, no data, no torch work)."""

from __future__ import annotations

import argparse

NAME = "validate"
HELP = (
    "check a suite file (schema, components, parameters, threats, expectations) without running it"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", metavar="SUITE", nargs="?", help="suite YAML file or builtin:NAME")
    p.add_argument(
        "--dump-defaults",
        action="store_true",
        help="print a commented suite with every registered component at its defaults",
    )


def run(args: argparse.Namespace) -> int:
    from robustbench_lite.core.errors import RobustbenchLiteError
    from robustbench_lite.suite.schema import load_suite

    if args.dump_defaults:
        from robustbench_lite.suite.defaults import dump_defaults

        print(dump_defaults(), end="")
        return 0
    if not args.suite:
        raise RobustbenchLiteError(
            "validate needs a SUITE (a YAML file or builtin:NAME), or --dump-defaults"
        )
    suite = load_suite(args.suite)
    kinds = sorted({c.kind for c in suite.checks})
    print(
        f"ok: {args.suite}: suite {suite.name!r}, {len(suite.checks)} checks ({', '.join(kinds)})"
    )
    return 0

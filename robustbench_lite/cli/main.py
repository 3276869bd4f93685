"""The ``robustbench-lite`` command line (also ``python -m robustbench_lite``).

Each subcommand is a module of :mod:`robustbench_lite.cli` that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are discovered, not listed here.

Exit codes: 0 all good, 1 an expectation failed, 2 bad input or configuration, 3 internal error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def _command_modules() -> list[ModuleType]:
    import robustbench_lite.cli as pkg
    from robustbench_lite.core.registry import import_submodules

    mods = [m for m in import_submodules(pkg.__name__, pkg.__path__) if hasattr(m, "NAME")]
    return sorted(mods, key=lambda m: m.NAME)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n"
        )


def _one_line(text: object) -> str:
    """``text`` with its lines joined, so an error is always exactly one line on stderr."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every discovered subcommand."""
    from robustbench_lite.core.version import __version__

    parser = _Parser(
        prog="robustbench-lite",
        description="Attack, verify and scan PyTorch models against YAML-defined threat models.",
    )
    parser.add_argument("--version", action="version", version=f"robustbench-lite {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising."""
    from robustbench_lite.core.errors import ExpectationFailed, RobustbenchLiteError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args))
    except ExpectationFailed as exc:
        print(f"robustbench-lite: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except RobustbenchLiteError as exc:
        print(f"robustbench-lite: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("robustbench-lite: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one place that turns a bug into exit code 3
        if os.environ.get("RBL_DEBUG"):
            traceback.print_exc()
        print(
            f"robustbench-lite: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(set RBL_DEBUG=1 for a traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL

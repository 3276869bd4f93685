"""Run options that the CLI (``run``, ``evaluate``) and the pytest plugin both offer.

Declared once here and built into both faces (pytest-benchmark's way): ``--seed`` on the CLI is
``--rb-seed`` under pytest, with the same type, metavar and help. Standard library only, so
that the pytest plugin can import it at load time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

#: The prefix the pytest plugin puts before every shared option (``--rb-seed``).
PYTEST_PREFIX = "--rb-"


def seed_int(text: str) -> int:
    """argparse type: a seed torch accepts, 0 <= seed < 2**63."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} must be in 0..2**63-1")
    return value


@dataclass(frozen=True)
class RunOption:
    """One option of both faces: ``--NAME`` on the CLI, ``--rb-NAME`` under pytest."""

    name: str
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    flag: bool = False

    def argparse_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``add_argument`` / ``addoption``."""
        if self.flag:
            return {"action": "store_true", "help": self.help}
        kwargs: dict[str, Any] = {"metavar": self.metavar, "help": self.help}
        if self.type is not None:
            kwargs["type"] = self.type
        return kwargs


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("seed", "seed of attacks, targets and suites", "SEED", seed_int),
    RunOption("quick", "fewer samples and each attack's quick settings", flag=True),
    RunOption(
        "device", "torch device for suites and attacks, e.g. cuda (default: the model's)", "DEVICE"
    ),
    RunOption("report", "write the report here (format from the suffix)", "PATH"),
    RunOption("compare", "compare the report with a baseline report", "BASELINE.json"),
    RunOption(
        "compare-fail",
        "fail on a regression larger than AMOUNT against the baseline, e.g. robust_accuracy:0.02",
        "METRIC:AMOUNT",
    ),
)


class _AddsOptions(Protocol):
    def add_argument(self, *names: str, **kwargs: Any) -> Any: ...


class _AddsPytestOptions(Protocol):
    def addoption(self, *names: str, **kwargs: Any) -> Any: ...


def add_cli_options(parser: _AddsOptions, names: tuple[str, ...] | None = None) -> None:
    """Add the shared options (all, or those in ``names``) to an argparse parser."""
    for option in RUN_OPTIONS:
        if names is None or option.name in names:
            parser.add_argument(f"--{option.name}", **option.argparse_kwargs())


def add_pytest_options(group: _AddsPytestOptions) -> None:
    """Add every shared option to a pytest option group, as ``--rb-NAME``."""
    for option in RUN_OPTIONS:
        group.addoption(f"{PYTEST_PREFIX}{option.name}", **option.argparse_kwargs())

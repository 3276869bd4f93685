"""Run options shared by the CLI and the pytest plugin are declared once and offered by both."""

from __future__ import annotations

import argparse

import pytest

from robustbench_lite.cli.main import build_parser
from robustbench_lite.suite.options import RUN_OPTIONS, seed_int


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_every_shared_option_is_on_the_cli(command: str) -> None:
    flags = {flag for action in _subparser(command)._actions for flag in action.option_strings}
    assert {f"--{o.name}" for o in RUN_OPTIONS} <= flags


def test_every_shared_option_is_in_pytest(pytestconfig: pytest.Config) -> None:
    for option in RUN_OPTIONS:
        pytestconfig.getoption(f"--rb-{option.name}")  # raises ValueError when not declared


def test_seed_type_is_shared() -> None:
    assert seed_int("7") == 7
    with pytest.raises(argparse.ArgumentTypeError, match="0..2"):
        seed_int("-1")

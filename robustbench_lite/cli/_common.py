"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.core.model import Model


def add_model_arguments(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--model SPEC [--arch module:attr] [--trust-checkpoint]``."""
    p.add_argument(
        "--model",
        required=required,
        metavar="SPEC",
        help="zoo:NAME, a state_dict checkpoint (with --arch), TorchScript or .onnx file",
    )
    p.add_argument("--arch", metavar="MODULE:ATTR", help="architecture for a state_dict checkpoint")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow full unpickling of the checkpoint (runs code; trusted files only)",
    )


def load_model_from_args(args: argparse.Namespace) -> Model:
    """The model named by ``--model``/``--arch``."""
    from robustbench_lite.models.loading import load_model

    return load_model(args.model, arch=args.arch, trust_checkpoint=args.trust_checkpoint)


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["steps=20", "loss=margin"]`` -> ``{"steps": 20, "loss": "margin"}`` (YAML scalars)."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RobustbenchLiteError(
                f"--param {item!r}: write it as key=value, e.g. --param steps=20"
            )
        try:
            params[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise RobustbenchLiteError(
                f"--param {item!r}: {value!r} is not a valid value"
            ) from None
    return params


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def check_report_path(path: str | None, *, what: str | None = None) -> None:
    """Fail before any work when ``--report PATH`` cannot be written: a device, FIFO, folder,
    dangling symlink, a path under a file, or a folder we may not write in (exit 2).

    ``what`` names the path in the message (default ``--report PATH``).
    """
    if path is None:
        return
    from robustbench_lite.core.io import check_output_path

    check_output_path(path, what=what or f"--report {path}")


def store_path(args: argparse.Namespace) -> str | None:
    """The results store of ``run``/``evaluate``: ``--db``, else beside ``--report``, else the
    cache; None with ``--no-db``."""
    if args.no_db:
        return None
    from robustbench_lite.suite.store import default_db_path

    return str(args.db or default_db_path(args.report))


def check_run_outputs(args: argparse.Namespace) -> None:
    """``run``/``evaluate``: the report and the results store can be written (before any work)."""
    check_report_path(args.report)
    db = store_path(args)
    if db is not None:
        what = f"--db {db}" if args.db else f"results store {db} (set --db PATH, or --no-db)"
        check_report_path(db, what=what)

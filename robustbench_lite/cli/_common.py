"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.core.model import Model


def add_model_arguments(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--model SPEC [--arch module:attr] [--trust-checkpoint]`` and the input-space options."""
    p.add_argument(
        "--model",
        required=required,
        metavar="SPEC",
        help="zoo:NAME, a state_dict checkpoint (with --arch), TorchScript, .pt2 or .onnx file",
    )
    add_checkpoint_arguments(p)
    add_input_space_arguments(p)


def add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    """``--arch module:attr --trust-checkpoint``: how a checkpoint file is opened."""
    p.add_argument(
        "--arch",
        metavar="MODULE:ATTR",
        help="architecture for a state_dict checkpoint (MODULE is looked up in the current "
        "folder first)",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow full unpickling of the checkpoint (runs code; trusted files only)",
    )


def add_input_space_arguments(p: argparse.ArgumentParser) -> None:
    """``--bounds LO,HI --mean M,.. --std S,.. --input-shape C,H,W``: what the model takes."""
    p.add_argument(
        "--bounds",
        type=bounds_pair,
        metavar="LO,HI",
        help="the model's input range, e.g. 0,1 (default: the checkpoint's metadata, else the "
        "data's declared domain)",
    )
    p.add_argument(
        "--mean",
        type=numbers,
        metavar="M,...",
        help="per-channel normalization mean the model applies (with --std)",
    )
    p.add_argument(
        "--std", type=numbers, metavar="S,...", help="per-channel normalization std (with --mean)"
    )
    p.add_argument(
        "--input-shape",
        type=shape,
        metavar="C,H,W",
        help="shape of one sample (default: the checkpoint's metadata, else the data's)",
    )


def bounds_pair(text: str) -> tuple[float, float]:
    """argparse type of ``--bounds``: two finite numbers ``LO,HI`` with LO < HI."""
    values = numbers(text)
    if len(values) != 2 or not values[0] < values[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: write LO,HI with LO < HI, e.g. 0,1")
    return values[0], values[1]


def numbers(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated finite numbers (``0.5,0.25``)."""
    import math

    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: write numbers separated by commas, e.g. 0.5,0.25"
        ) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: every number must be finite")
    return values


def shape(text: str) -> tuple[int, ...]:
    """argparse type of ``--input-shape``: positive whole numbers ``1,8,8`` (or ``1x8x8``)."""
    parts = text.replace("x", ",").replace(" ", "").split(",")
    try:
        values = tuple(int(v) for v in parts)
    except ValueError:
        values = ()
    if not values or len(values) > 8 or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: write the shape of one sample, e.g. 1,8,8"
        )
    return values


def input_space_options(args: argparse.Namespace) -> dict[str, Any]:
    """The input-space options given on the command line, as ``load_model`` keywords."""
    mean, std = getattr(args, "mean", None), getattr(args, "std", None)
    if (mean is None) != (std is None):
        raise RobustbenchLiteError("--mean and --std go together: give both, or neither")
    out = {
        "bounds": getattr(args, "bounds", None),
        "mean": mean,
        "std": std,
        "input_shape": getattr(args, "input_shape", None),
    }
    return {k: v for k, v in out.items() if v is not None}


def load_model_from_args(args: argparse.Namespace) -> Model:
    """The model named by ``--model``/``--arch`` with the input-space options given; what is
    still unknown is filled from the data by :func:`model_and_data` (or the suite runner).

    ``--arch MODULE:ATTR`` finds MODULE in the current folder first."""
    from pathlib import Path

    from robustbench_lite.models.loading import open_model

    return open_model(
        args.model,
        arch=args.arch,
        trust_checkpoint=args.trust_checkpoint,
        given_by="cli",
        arch_paths=[Path.cwd()],
        **input_space_options(args),
    )


def model_and_data(
    args: argparse.Namespace, model: Model, *, n: int | None, split: str = "test"
) -> tuple[Model, Any, Any, Any]:
    """``(model, x, y, data choice)``: ``--data`` or the model's own data, loaded, and the
    model's input space completed from it (exit 2 naming ``--bounds`` if nothing gives them)."""
    from robustbench_lite.models.domain import load_model_data

    model, x, y, choice = load_model_data(model, getattr(args, "data", None), n=n, split=split)
    model.check_inputs(x)
    return model, x, y, choice


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

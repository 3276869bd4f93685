"""``robustbench-lite evaluate SPEC``: ``run builtin:standard --model SPEC`` (clean + standard attack).

Prints a table with clean accuracy and robust accuracy under each default threat: the model's
own (a zoo entry's, a checkpoint's ``rbl_meta``), else its data's (digits: linf 0.1 and l2 1.0);
``--threat`` replaces them, and a model and data without defaults ask for ``--threat``. The data
is ``--data``, else the model's own (``zoo:orl-cnn``: ORL at 56x46), else digits. Every option of
``run`` applies.
"""

from __future__ import annotations

import argparse

from robustbench_lite.cli._common import add_input_space_arguments
from robustbench_lite.cli.run import add_suite_run_arguments

NAME = "evaluate"
HELP = "clean accuracy and robust accuracy under the model's default threats (the main job)"
SUITE = "builtin:standard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", metavar="SPEC", help="zoo:NAME, a checkpoint (with --arch), TorchScript or .onnx"
    )
    p.add_argument(
        "--arch",
        metavar="MODULE:ATTR",
        help="architecture for a state_dict checkpoint (MODULE is looked up in the current "
        "folder first)",
    )
    p.add_argument(
        "--trust-checkpoint", action="store_true", help="allow full unpickling (trusted files only)"
    )
    add_input_space_arguments(p)
    p.add_argument(
        "--threat",
        action="append",
        help="threat spec (repeatable); default: the model's own, else its data's",
    )
    add_suite_run_arguments(p, model_required=True)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from robustbench_lite.cli._common import check_run_outputs, load_model_from_args
    from robustbench_lite.cli.run import run_and_report
    from robustbench_lite.core.threat import ThreatModel

    check_run_outputs(args)  # a report or store path that cannot be written fails before work
    threats = tuple(
        ThreatModel.parse(t).spec() for t in args.threat or []
    )  # validate before loading
    model = load_model_from_args(args)
    if threats:
        space = dict(model.meta.get("input_space") or {})
        space["default_threats"] = {"value": list(threats), "source": "--threat"}
        model = replace(model, default_threats=threats, meta={**model.meta, "input_space": space})
    return run_and_report(args, SUITE, model)

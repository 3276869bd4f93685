"""``robustbench-lite evaluate SPEC``: ``run builtin:standard --model SPEC`` (clean + standard attack).

Prints a table with clean accuracy and robust accuracy under each of the model's default
threats (``--threat`` replaces them); every option of ``run`` applies.
"""

from __future__ import annotations

import argparse

from robustbench_lite.cli.run import add_suite_run_arguments

NAME = "evaluate"
HELP = "clean accuracy and robust accuracy under the model's default threats (the main job)"
SUITE = "builtin:standard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", metavar="SPEC", help="zoo:NAME, a checkpoint (with --arch), TorchScript or .onnx"
    )
    p.add_argument("--arch", metavar="MODULE:ATTR", help="architecture for a state_dict checkpoint")
    p.add_argument(
        "--trust-checkpoint", action="store_true", help="allow full unpickling (trusted files only)"
    )
    p.add_argument(
        "--threat", action="append", help="threat spec (repeatable); default: the model's own"
    )
    add_suite_run_arguments(p, model_required=True)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from robustbench_lite.cli._common import check_run_outputs
    from robustbench_lite.cli.run import run_and_report
    from robustbench_lite.core.threat import ThreatModel
    from robustbench_lite.models.loading import load_model

    check_run_outputs(args)  # a report or store path that cannot be written fails before work
    threats = tuple(
        ThreatModel.parse(t).spec() for t in args.threat or []
    )  # validate before loading
    model = load_model(args.model, arch=args.arch, trust_checkpoint=args.trust_checkpoint)
    if threats:
        model = replace(model, default_threats=threats)
    return run_and_report(args, SUITE, model)

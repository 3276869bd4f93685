"""``robustbench-lite detect MODEL [--detector tminer]``: scan one model for a trojan.

Prints the verdict, the detector's score and threshold and the recovered triggers. Exit 0:
clean (not flagged), 1: flagged, 2: bad input (a model the detector cannot scan, a bad
``--param``, an unwritable ``--report``). A text model loads with its vocabulary: a zoo name
(``zoo:mr-lstm-trojan``) or a checkpoint whose ``rbl_meta`` holds ``"vocab"``
(:mod:`robustbench_lite.models.meta`). T-Miner reads no data, so none is loaded.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from robustbench_lite.cli._common import add_checkpoint_arguments, check_report_path, parse_params

NAME = "detect"
HELP = "scan a model for a trojan (exit 0 clean, 1 flagged, 2 bad input)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        metavar="MODEL",
        help="zoo:NAME, a state_dict checkpoint (with --arch), TorchScript, .pt2 or .onnx file",
    )
    p.add_argument(
        "--detector",
        default="tminer",
        help="detector name (see `robustbench-lite list detectors`; default tminer)",
    )
    p.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="detector setting; repeatable"
    )
    add_checkpoint_arguments(p)
    p.add_argument("--report", metavar="PATH", help="write the verdict and evidence as JSON here")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robustbench_lite.core.io import write_atomic
    from robustbench_lite.core.registry import create_detector
    from robustbench_lite.models.loading import open_model
    from robustbench_lite.report.model import environment, jsonable

    check_report_path(args.report)
    detector = create_detector(args.detector, **parse_params(args.param))  # before loading
    model = open_model(
        args.model,
        arch=args.arch,
        trust_checkpoint=args.trust_checkpoint,
        given_by="cli",
        arch_paths=[Path.cwd()],
    )
    det = detector.scan(model, None)
    evidence = dict(det.evidence)
    triggers = [str(t) for t in evidence.get("triggers", [])]
    print(f"model:     {model.name}")
    print(f"detector:  {args.detector}")
    print(f"verdict:   {'FLAGGED (trojan suspected)' if det.flagged else 'clean'}")
    print(f"score:     {det.score:.4g} (threshold {det.threshold:.4g})")
    print(f"triggers:  {', '.join(repr(t) for t in triggers) if triggers else '-'}")
    if args.report:
        out: dict[str, Any] = {
            "model": model.name,
            "detector": args.detector,
            "settings": repr(detector),
            "flagged": bool(det.flagged),
            "score": float(det.score),
            "threshold": float(det.threshold),
            "triggers": triggers,
            "evidence": jsonable(evidence),
            "environment": environment(),
        }
        write_atomic(args.report, json.dumps(out, indent=1, default=str))
    return 1 if det.flagged else 0

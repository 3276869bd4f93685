"""``robustbench-lite attack NAME --model SPEC --threat SPEC``: one attack, one summary."""

from __future__ import annotations

import argparse

from robustbench_lite.cli._common import (
    add_model_arguments,
    check_report_path,
    load_model_from_args,
    model_and_data,
    parse_params,
    positive_int,
)
from robustbench_lite.cli._inversion import check_inversion_args, is_inversion, run_inversion
from robustbench_lite.suite.options import seed_int

NAME = "attack"
HELP = "run one attack on a model and print its summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "attack", metavar="NAME", help="attack name (see `robustbench-lite list attacks`)"
    )
    add_model_arguments(p)
    p.add_argument("--threat", required=True, help="threat spec, e.g. linf:8/255 or l2:0.5")
    p.add_argument(
        "--data",
        help="dataset name or npz:PATH (default: the model's own data, e.g. a zoo model's, "
        "else digits)",
    )
    p.add_argument("--n", type=positive_int, help="number of test samples (default: all)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed for random starts and targets")
    p.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="attack hyperparameter; repeatable"
    )
    p.add_argument("--report", metavar="PATH", help="write the JSON report here")


def run(args: argparse.Namespace) -> int:
    from robustbench_lite.core.io import write_atomic
    from robustbench_lite.core.registry import create_attack
    from robustbench_lite.core.threat import ThreatModel, require_supported
    from robustbench_lite.models.domain import input_space_record
    from robustbench_lite.report.model import CheckResult, Report, environment
    from robustbench_lite.report.values import fusion_cell, fusion_merge, result_values

    check_report_path(args.report)
    attack = create_attack(args.attack, **parse_params(args.param))  # validates before heavy work
    threat = ThreatModel.parse(args.threat)
    require_supported("attack", attack.name, attack.supports, threat)  # before loading anything
    if is_inversion(attack):  # every class reconstructed, as the suite's invert: check does
        check_inversion_args(args, attack)
        model = load_model_from_args(args)
        values, elapsed, detail = run_inversion(args, attack, model)
        kind, env = "invert", {}
    else:
        model, x, y, data = model_and_data(args, load_model_from_args(args), n=args.n)
        result = attack(model, x, y, threat, seed=args.seed)
        fusion = fusion_cell(model, x, result, threat.modality)  # fusion detectors: their metrics
        values = result_values(result) | (fusion_merge([fusion]) if fusion is not None else {})
        elapsed, kind, env = result.elapsed_s, "attack", {"data": data.record()}
        detail = {"n": len(y), "data": data.source, "data_options": data.record()["options"]}
    domain = input_space_record(model)
    check = CheckResult(
        id=f"{attack.name}-{threat.name}",
        kind=kind,
        component=attack.name,
        threat=threat.name,
        passed=True,
        values=values,
        elapsed_s=elapsed,
        detail={"params": repr(attack), **detail, "seed": args.seed, "model_domain": domain},
    )
    report = Report(
        suite=f"attack:{attack.name}",
        model=model.name,
        results=(check,),
        env=environment(seed=args.seed, **env, model_domain=domain),
    )
    # the table and its notes: adaptive attacks' texts, and the values line of a check whose row
    # shows no accuracy (an inversion's target_top1, eval_top1, ...)
    print(report.render("table"))
    if args.report:
        try:
            write_atomic(args.report, report.to_json())
        except OSError as exc:  # after the work: the table above holds the results
            from robustbench_lite.core.errors import OutputPathError

            raise OutputPathError(
                f"--report {args.report}: the report could not be written ({exc}); the results "
                "are in the table printed on stdout"
            ) from None
    return 0

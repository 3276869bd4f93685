"""``robustbench-lite evaluate SPEC``: clean and robust accuracy under the model's default threats."""

from __future__ import annotations

import argparse

from robustbench_lite.commands._common import positive_int

NAME = "evaluate"
HELP = "clean accuracy and robust accuracy under the model's default threats (the main job)"
DEFAULT_ATTACK = "pgd"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="SPEC", help="zoo:NAME, a checkpoint (with --arch), TorchScript or .onnx")
    p.add_argument("--arch", metavar="MODULE:ATTR", help="architecture for a state_dict checkpoint")
    p.add_argument("--trust-checkpoint", action="store_true", help="allow full unpickling (trusted files only)")
    p.add_argument("--data", default="digits", help="dataset name or npz:PATH (default: digits)")
    p.add_argument("--threat", action="append", help="threat spec (repeatable); default: the model's own")
    p.add_argument("--n", type=positive_int, help="number of test samples (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", metavar="PATH", help="write the JSON report here")


def run(args: argparse.Namespace) -> int:
    from robustbench_lite.data import load_data
    from robustbench_lite.errors import RobustbenchLiteError
    from robustbench_lite.loading import load_model
    from robustbench_lite.registry import create_attack
    from robustbench_lite.report import CheckResult, Report, environment, write_atomic
    from robustbench_lite.threat import ThreatModel

    threats = [ThreatModel.parse(t) for t in args.threat or []]
    model = load_model(args.model, arch=args.arch, trust_checkpoint=args.trust_checkpoint)
    threats = threats or [ThreatModel.parse(t) for t in model.default_threats]
    if not threats:
        raise RobustbenchLiteError(f"{model.name} declares no default threats; pass --threat, e.g. --threat linf:8/255")
    x, y = load_data(args.data, split="test", n=args.n)
    attack = create_attack(DEFAULT_ATTACK)
    results = []
    for threat in threats:
        r = attack(model, x, y, threat, seed=args.seed)
        results.append(CheckResult(
            id=f"{attack.name}-{threat.name}", kind="attack", component=attack.name, threat=threat.name,
            passed=True, values=r.values(), elapsed_s=r.elapsed_s,
        ))  # fmt: skip
    report = Report(suite="evaluate", model=model.name, results=tuple(results), env=environment(seed=args.seed))
    print(report.to_table())
    if args.report:
        write_atomic(args.report, report.to_json())
    return 0

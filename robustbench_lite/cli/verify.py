"""``robustbench-lite verify``: VNN-COMP style (NET.onnx PROP.vnnlib) or dataset robustness.

``robustbench-lite verify NET.onnx PROP.vnnlib --timeout 60 [--out RESULT.txt]`` prints
``sat``, ``unsat``, ``timeout`` or ``unknown`` on the first line (then the reason and time) and
writes the VNN-COMP result file (the verdict, then ``((X_0 v) ... (Y_0 v) ...)`` for sat).
``robustbench-lite verify --model zoo:digits-mlp --threat linf:0.01 --n 20`` verifies local
robustness of dataset samples (``--data``, else the model's own data, else digits) and prints
the verified / falsified / unknown fractions; ``--verifier NAME`` (default ``complete``, alias
``smt``) and ``--param KEY=VALUE`` choose another verifier, e.g. ``--verifier smoothing --param
sigma=0.25``, whose further values (certified accuracy at radii, abstentions) follow. Reports
record a verifier by its canonical name (``--verifier smt`` is reported as ``complete``). The
input shape comes from the model's file, else the data's samples, else ``--input-shape``;
without one the run stops (exit 2), never a verdict.

``--timeout`` is a positive, finite number of seconds (at most a week) and covers the whole
VNN-COMP run: loading the network, reading the property and deciding it. The network is loaded
first, so the property's variable indices are bounded by its input and output sizes. A network
that cannot be run and verified exactly (``unsupported: <op> (<why>) at <node>``), a malformed
network or property, or one over a size limit is bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from typing import Any

from robustbench_lite.cli._common import (
    add_model_arguments,
    check_report_path,
    load_model_from_args,
    model_and_data,
    parse_params,
    positive_int,
)
from robustbench_lite.cli._values import values_line
from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.core.verifier import DEFAULT_TIMEOUT_S

NAME = "verify"
HELP = (
    "verify a VNNLIB property of an ONNX network (complete), or robustness of dataset samples "
    "(--verifier, default complete)"
)
#: The verifier of the VNN-COMP mode and the default of the dataset mode.
DEFAULT_VERIFIER = "complete"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", nargs="?", help="an .onnx network (VNN-COMP mode, with PROPERTY)")
    p.add_argument("property", nargs="?", help="a .vnnlib property (VNN-COMP mode)")
    add_model_arguments(p, required=False)
    p.add_argument("--threat", help="threat spec for dataset mode, e.g. linf:0.01")
    p.add_argument(
        "--data",
        help="dataset name or npz:PATH (default: the model's own data, else digits)",
    )
    p.add_argument(
        "--n", type=positive_int, default=20, help="number of test samples (default: 20)"
    )
    p.add_argument(
        "--timeout",
        type=timeout_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds per property / sample, at most {MAX_TIMEOUT_S:g} "
        f"(default: {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument("--workers", type=positive_int, default=2, help="worker processes (default: 2)")
    p.add_argument(
        "--verifier",
        default=DEFAULT_VERIFIER,
        metavar="NAME",
        help="dataset mode: verifier name (see `robustbench-lite list verifiers`; default: "
        f"{DEFAULT_VERIFIER})",
    )
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="dataset mode: verifier hyperparameter, e.g. --param sigma=0.25; repeatable",
    )
    p.add_argument("--out", metavar="RESULT.txt", help="write the VNN-COMP result file here")
    p.add_argument("--report", metavar="PATH", help="dataset mode: write the JSON report here")


#: The longest ``--timeout``: one week (the alarm timer and deadlines stay exact below it).
MAX_TIMEOUT_S = 7 * 24 * 3600.0
#: Seconds past ``--timeout`` before the hard alarm stops a step that overruns its deadline.
HARD_GRACE_S = 2.0


def timeout_seconds(text: str) -> float:
    """``--timeout``: a positive, finite number of seconds, at most :data:`MAX_TIMEOUT_S`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds") from None
    problem = _timeout_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(f"{text[:40]} {problem}")
    return value


def _timeout_problem(value: float) -> str:
    if math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S:
        return ""
    return f"must be a positive, finite number of seconds, at most {MAX_TIMEOUT_S:g} (a week)"


class _HardTimeout(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` swallows it."""


def _alarm(signum: int, frame: Any) -> None:
    raise _HardTimeout()


def run(args: argparse.Namespace) -> int:
    problem = _timeout_problem(float(args.timeout))  # also for a ready-made Namespace
    if problem:
        raise RobustbenchLiteError(f"--timeout {args.timeout}: {problem}")
    check_report_path(getattr(args, "report", None))  # outputs are checked before any work
    out = getattr(args, "out", None)
    check_report_path(out, what=f"--out {out}")
    if args.network or args.property:
        if not (args.network and args.property) or args.model:
            raise RobustbenchLiteError("VNN-COMP mode takes NET.onnx PROP.vnnlib (and no --model)")
        from robustbench_lite.core.registry import VERIFIERS

        name = VERIFIERS.canonical(getattr(args, "verifier", DEFAULT_VERIFIER))
        if name != DEFAULT_VERIFIER or getattr(args, "param", None):
            raise RobustbenchLiteError(
                f"VNN-COMP mode runs the {DEFAULT_VERIFIER} verifier; --verifier and --param are "
                "for dataset mode (--model SPEC --threat SPEC)"
            )
        return _run_vnnlib(args)
    if not args.model or not args.threat:
        raise RobustbenchLiteError(
            "give NET.onnx PROP.vnnlib, or --model SPEC --threat SPEC for dataset samples"
        )
    return _run_dataset(args)


def _run_vnnlib(args: argparse.Namespace) -> int:
    from robustbench_lite.core.registry import create_verifier
    from robustbench_lite.core.types import Status
    from robustbench_lite.models.loading import open_model

    start = time.monotonic()
    verifier = create_verifier(DEFAULT_VERIFIER, workers=args.workers)
    onnx_path = str(args.network) if str(args.network).lower().endswith(".onnx") else None
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, args.timeout + HARD_GRACE_S)  # covers every step
    try:
        # a network that is malformed or cannot be run exactly (``unsupported: <op> (<why>)
        # at <node>``) is bad input: exit 2 with that line, never a verdict
        # the property gives the input box, so the network's own bounds are not needed
        model = open_model(args.network)
        n_in, n_out = _network_sizes(model, args.network)
        # parse errors: exit 2; variable indices bounded by the network's sizes
        prop = verifier.read_property(args.property, n_inputs=n_in, n_outputs=n_out)
        left = args.timeout - (time.monotonic() - start)
        outcome: tuple[Any, ...]
        if left <= 0:
            outcome = ("timeout", "timeout while loading the network and the property")
        else:
            res = verifier.verify_property(model, prop, timeout_s=left, onnx_path=onnx_path)
            outcome = (res,)
    except _HardTimeout:
        outcome = ("timeout", "hard timeout")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if len(outcome) == 2:
        return _finish(args, outcome[0], outcome[1], start)
    res = outcome[0]
    if res.status is Status.FALSIFIED:
        return _finish(
            args,
            "sat",
            "counterexample re-checked in float32" + (" and onnxruntime" if onnx_path else ""),
            start,
            res.x,
            res.y,
            res.stats,
        )
    if res.status is Status.VERIFIED:
        return _finish(args, "unsat", "property holds", start, stats=res.stats)
    verdict = "timeout" if res.reason == "timeout" else "unknown"
    return _finish(args, verdict, res.reason, start, stats=res.stats)


def _network_sizes(model: Any, spec: str) -> tuple[int | None, int | None]:
    """The network's flat input and output sizes (None when its input shape is unknown)."""
    import torch

    if model.input_shape is None:
        return None, None
    shape = tuple(model.input_shape)
    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *shape)))
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise RobustbenchLiteError(
            f"{spec}: the network does not run on its input shape {shape}: {first}"
        ) from None
    return math.prod(shape), int(out[0].numel())


def result_text(verdict: str, x: Any = None, y: Any = None) -> str:
    """VNN-COMP result file text: the verdict line, then the witness for ``sat``."""
    if verdict != "sat" or x is None or y is None:
        return verdict + "\n"
    items = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)] + [
        f"(Y_{i} {float(v)!r})" for i, v in enumerate(y)
    ]
    return "sat\n(" + "\n ".join(items) + ")\n"


def _finish(
    args: argparse.Namespace,
    verdict: str,
    reason: str,
    start: float,
    x: Any = None,
    y: Any = None,
    stats: dict[str, Any] | None = None,
) -> int:
    elapsed = time.monotonic() - start
    print(verdict)
    detail = ", ".join(f"{k}={v}" for k, v in (stats or {}).items() if k != "time_s")
    print(f"{reason} ({elapsed:.2f} s{'; ' + detail if detail else ''})")
    if args.out:
        from robustbench_lite.core.io import write_atomic

        write_atomic(args.out, result_text(verdict, x, y))
    sys.stdout.flush()
    return 0


def _run_dataset(args: argparse.Namespace) -> int:
    from robustbench_lite.core.io import write_atomic
    from robustbench_lite.core.threat import ThreatModel, require_meaningful_eps
    from robustbench_lite.models.domain import input_space_record
    from robustbench_lite.report.model import CheckResult, Report, environment
    from robustbench_lite.report.values import result_values
    from robustbench_lite.report.verify_search import search_summary, search_text

    threat = ThreatModel.parse(args.threat)
    verifier = dataset_verifier(args, threat)  # a bad name, parameter or threat: before loading
    name = verifier.name
    model, x, y, data = model_and_data(args, load_model_from_args(args), n=args.n)
    require_meaningful_eps(threat, model.bounds, x)  # linf:30 on [0, 1] measures nothing
    if model.input_shape is None:  # a configuration problem: bad input, never a verdict
        raise RobustbenchLiteError(
            f"{model.name}: the verifier needs the shape of one sample and the data "
            f"{data.source} does not give it; pass --input-shape, e.g. --input-shape 1,8,8"
        )
    domain = input_space_record(model)
    res = verifier.verify(model, x, y, threat, timeout_s=args.timeout)
    values = result_values(res)
    reasons = sorted({r for r in res.reasons.values()})
    per_sample = list(res.stats.get("per_sample", []))
    search = search_summary(per_sample)
    check = CheckResult(
        id=f"{name}-{threat.name}",
        kind="verify",
        component=name,
        threat=threat.name,
        passed=True,
        values=values,
        elapsed_s=res.elapsed_s,
        detail={
            "n": len(y),
            "data": data.source,
            "timeout_s": args.timeout,
            "unknown_reasons": reasons,
            "model_domain": domain,
            # per sample: method, domains/boxes visited, seconds in bounds / z3 / falsification
            "per_sample_stats": per_sample,
            "timing": {"search": search},  # their sums (report/verify_search.py)
        },
    )
    report = Report(
        suite=f"verify:{name}",
        model=model.name,
        results=(check,),
        env=environment(seed=0, data=data.record(), model_domain=domain),
    )
    print(report.to_table())
    print(
        f"verified {res.verified_fraction:.3f}  falsified {res.falsified_fraction:.3f}  "
        f"unknown {values['unknown_fraction']:.3f}  of {len(y)} samples"
        + (f"; unknown: {'; '.join(reasons)}" if reasons else "")
    )
    shown = ("verified_fraction", "falsified_fraction", "unknown_fraction")
    more = values_line(values, skip=shown)
    if more:  # e.g. smoothing's certified_accuracy@R and abstain_fraction
        print(more)
    if search:  # the complete verifier: methods, domains, seconds per phase
        print(f"search over {search_text(search)}")
    if args.report:
        write_atomic(args.report, report.to_json())
    return 0


def dataset_verifier(args: argparse.Namespace, threat: Any) -> Any:
    """The dataset mode's verifier: ``--verifier`` with its ``--param`` values (``--workers``
    for one that takes ``workers``), checked against ``threat``; bad input raises one line."""
    from robustbench_lite.core.registry import VERIFIERS, create_verifier
    from robustbench_lite.core.threat import require_supported

    name = VERIFIERS.canonical(getattr(args, "verifier", DEFAULT_VERIFIER))  # smt -> complete
    params = parse_params(getattr(args, "param", None))
    if "workers" in [p.name for p in VERIFIERS.params(name)]:  # also an unknown-name error
        params.setdefault("workers", args.workers)
    verifier = create_verifier(name, **params)
    require_supported("verifier", name, getattr(verifier, "supports", None), threat)
    return verifier

"""``robustbench-lite run SUITE``: run a suite (a YAML file or builtin:NAME) against a model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from robustbench_lite.cli._common import add_model_arguments, positive_int

NAME = "run"
HELP = "run a suite of checks (YAML file or builtin:NAME) against a model; resumable"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "suite", metavar="SUITE", help="suite YAML file or builtin:NAME (see `list suites`)"
    )
    add_suite_run_arguments(p)


def add_suite_run_arguments(p: argparse.ArgumentParser, *, model_required: bool = False) -> None:
    """Options shared by ``run`` and ``evaluate``."""
    from robustbench_lite.report.formats import format_names
    from robustbench_lite.suite.executors import executor_names
    from robustbench_lite.suite.options import add_cli_options

    if not model_required:
        add_model_arguments(p, required=False)
    p.add_argument(
        "--data",
        help="dataset name or npz:PATH (default: the suite's, else the model's own, else digits)",
    )
    p.add_argument("--n", type=positive_int, help="number of samples (default: the suite's)")
    add_cli_options(p, ("seed", "device", "quick", "report"))
    p.add_argument(
        "--format",
        choices=format_names(),
        help="report format (default: table on stdout, else by suffix)",
    )
    p.add_argument(
        "--executor",
        choices=executor_names(),
        default="local",
        help="where cells run (default: local)",
    )
    p.add_argument(
        "--workers", type=positive_int, help="worker processes / Ray CPUs (default: all cores)"
    )
    p.add_argument(
        "--ray-address", metavar="ADDR", help="Ray cluster to join (default: start a local Ray)"
    )
    p.add_argument(
        "--db", metavar="PATH", help="results store (default: beside --report, else the cache)"
    )
    p.add_argument("--no-db", action="store_true", help="keep no results store (no resume)")
    p.add_argument("--fresh", action="store_true", help="ignore stored results of this exact run")
    add_cli_options(p, ("compare", "compare-fail"))
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no table on stdout"
    )


def run(args: argparse.Namespace) -> int:
    from robustbench_lite.cli._common import (
        check_run_outputs,
        input_space_options,
        load_model_from_args,
    )
    from robustbench_lite.core.errors import RobustbenchLiteError

    check_run_outputs(args)  # a report or store path that cannot be written fails before work
    if not args.model and (input_space_options(args) or args.arch):
        raise RobustbenchLiteError(
            "--arch, --bounds, --mean/--std and --input-shape describe --model; for the suite's "
            "own model, set them in its model: block"
        )
    model = load_model_from_args(args) if args.model else None
    return run_and_report(args, args.suite, model)


def run_and_report(args: argparse.Namespace, suite: str, model: Any) -> int:
    """Validate every option, run the suite, write/print the report; the exit code.

    The caller has checked the report and store paths (``check_run_outputs``) before loading
    the model.
    """
    from robustbench_lite.cli._common import store_path
    from robustbench_lite.core.io import write_atomic
    from robustbench_lite.report.compare import (
        baseline_metrics,
        change_table,
        changes,
        load_baseline,
        parse_fail_spec,
        regressions,
    )
    from robustbench_lite.report.formats import format_for, render, soundness_messages
    from robustbench_lite.suite.runner import run_suite
    from robustbench_lite.suite.schema import load_suite

    fmt = format_for(args.report, args.format)
    baseline = load_baseline(args.compare) if args.compare else None
    known = baseline_metrics(baseline) if baseline is not None else ()
    thresholds = parse_fail_spec(args.compare_fail, known=known) if args.compare_fail else {}
    if thresholds and baseline is None:
        from robustbench_lite.core.errors import RobustbenchLiteError

        raise RobustbenchLiteError("--compare-fail needs --compare BASELINE.json")
    loaded = load_suite(suite)  # validate before any model or data work
    db = store_path(args)
    report = run_suite(
        loaded,
        model,
        quick=args.quick,
        seed=args.seed,
        data=args.data,
        n=args.n,
        device=args.device,
        executor=args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
        db=db,
        fresh=args.fresh,
        progress=not args.quiet,
        trust_checkpoint=bool(getattr(args, "trust_checkpoint", False)),
    )
    announcement = reuse_line(report, db)
    if announcement:
        print(f"robustbench-lite: {announcement}", file=sys.stderr)
    if args.report:
        try:
            write_atomic(args.report, render(report, fmt))
        except OSError as exc:  # the work is done: keep its results and say where they are
            print(render(report, "table"))
            raise _report_not_written(args.report, exc, db) from None
        if not args.quiet:
            print(render(report, "table"))
    elif not args.quiet:
        print(render(report, fmt), end="" if fmt in ("md", "junit", "html") else "\n")
    for message in soundness_messages(report):
        print(f"robustbench-lite: {message}", file=sys.stderr)
    code = 0 if report.passed else 1
    if baseline is not None:
        found = changes(report, baseline)
        print(change_table(found))
        worse = regressions(found, thresholds)
        for c in worse:
            print(
                f"robustbench-lite: regression: {c.check} {c.metric} {c.baseline:.4f} -> {c.current:.4f}",
                file=sys.stderr,
            )
        code = 1 if worse else code
    if not report.passed:
        failed = [r.id for r in report.results if not r.passed]
        print(
            f"robustbench-lite: {len(failed)} of {len(report.results)} checks failed: {', '.join(failed)}",
            file=sys.stderr,
        )
    return code


def reuse_line(report: Any, db: str | None) -> str | None:
    """``3 of 3 checks (6 of 6 cells) reused from results.sqlite; --fresh recomputes`` when the
    run took cells from the results store, else None. A check counts when all its cells did."""
    cells = int(report.env.get("cells_resumed") or 0)
    if not cells:
        return None
    total = report.env.get("cells", cells)
    return (
        f"{report.reused_checks} of {len(report.results)} checks ({cells} of {total} cells) "
        f"reused from {db or 'the results store'}; --fresh recomputes"
    )


def _report_not_written(path: str, exc: OSError, db: str | None) -> Exception:
    """The one-line error when the report cannot be written after the run (exit 2)."""
    from robustbench_lite.core.errors import OutputPathError

    why = str(exc) if isinstance(exc, OutputPathError) else (exc.strerror or type(exc).__name__)
    kept = (
        f"the results are kept in the results store {db}; rerun the same command with a "
        "writable --report to write the report without redoing the work"
        if db is not None
        else "the results are in the table printed on stdout (no results store: --no-db)"
    )
    return OutputPathError(f"--report {path}: the report could not be written ({why}); {kept}")

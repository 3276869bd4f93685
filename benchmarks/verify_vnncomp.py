"""VNN-COMP instances (acasxu, mnistfc, oval21): the smt verifier against Marabou, same run.

Usage::

    python benchmarks/verify_vnncomp.py                 # all instances, 60 s each, both tools
    python benchmarks/verify_vnncomp.py --quick         # every 6th acasxu, every 5th mnistfc, 3 oval21
    python benchmarks/verify_vnncomp.py --benchmarks acasxu --timeout 60 --no-marabou
    python benchmarks/verify_vnncomp.py --medium        # 30 mnistfc, 120 s / 300 s (VNN-COMP)
    python benchmarks/verify_vnncomp.py --medium --start 20 --no-marabou  # the rest, ours only

Each instance runs in a forked child (its own process group, killed at timeout + 10 s), so a
hang can never stall the run. Times are measured inside the child (network and property
loading included, Python start-up excluded), for both tools alike; CPU seconds (user + system,
worker processes included) are recorded too, since the machine may be shared. A verdict is *wrong* when it
contradicts expected.csv (sat vs unsat); instances expected ``unknown`` cannot be judged.
Marabou (maraboupy 2.0, ``bench`` extra) runs single-threaded with its VNNLIB loader; the smt
verifier uses ``--workers`` processes. Writes benchmarks/results/verify_vnncomp.json; each of
our instances carries its statistics (method, domains visited, seconds in bounds / z3 /
falsification). The file is rewritten after every instance (``"partial": true`` until the run
ends), so a long run that is stopped keeps what it measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(
    os.environ.get(
        "RBL_VNNCOMP_DIR", Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "vnncomp"
    )
)
QUICK = {"acasxu": (6, None), "mnistfc": (5, None), "oval21": (7, 3)}  # (stride, max count)
#: ``--medium`` mnistfc: every other instance (30, both eps of all three networks) with
#: VNN-COMP's per-network timeouts.
MEDIUM_TIMEOUT = {"mnist-net_256x2": 120.0, "mnist-net_256x4": 300.0, "mnist-net_256x6": 300.0}


def _ours(onnx: str, vnnlib: str, timeout: float, workers: int) -> dict[str, Any]:
    from robustbench_lite.verify.vnnlib import read_vnnlib

    from robustbench_lite.core.registry import create_verifier
    from robustbench_lite.core.types import Status
    from robustbench_lite.models.onnx_import import load_onnx_model

    start = time.monotonic()
    try:
        model = load_onnx_model(onnx)
    except Exception as exc:  # unsupported operator: an UNKNOWN, reported as such
        return {"verdict": "unknown", "reason": str(exc)[:200], "time_s": time.monotonic() - start}
    prop = read_vnnlib(vnnlib)
    res = create_verifier("smt", workers=workers).verify_property(
        model, prop, timeout_s=timeout, onnx_path=onnx
    )
    verdict = {Status.FALSIFIED: "sat", Status.VERIFIED: "unsat"}.get(
        res.status, "timeout" if res.reason == "timeout" else "unknown"
    )
    stats = {
        k: (round(v, 4) if isinstance(v, float) else v)
        for k, v in res.stats.items()
        if isinstance(v, (int, float, str)) or v is None
    }
    return {
        "verdict": verdict,
        "reason": res.reason,
        "time_s": time.monotonic() - start,
        "method": str(res.stats.get("method", "")),
        "stats": stats,  # domains visited, seconds in bounds / z3 / falsification, ...
    }


def _marabou(onnx: str, vnnlib: str, timeout: float, workers: int) -> dict[str, Any]:
    import contextlib
    import io

    from maraboupy import Marabou

    start = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        net = Marabou.read_onnx(onnx)
        opts = Marabou.createOptions(timeoutInSeconds=int(timeout), verbosity=0, numWorkers=1)
        code, vals, _ = net.solve(verbose=False, options=opts, propertyFilename=vnnlib)
    verdict = {"sat": "sat", "unsat": "unsat", "TIMEOUT": "timeout"}.get(code, "unknown")
    out: dict[str, Any] = {"verdict": verdict, "reason": code, "time_s": time.monotonic() - start}
    if verdict == "sat":  # Marabou's witness, re-run like ours (the time above excludes this)
        x = np.array([vals[int(v)] for v in np.asarray(net.inputVars[0]).reshape(-1)])
        out["witness_gap"] = witness_gap(onnx, vnnlib, x)
        out["witness_valid"] = out["witness_gap"] <= 0.0
    return out


def witness_gap(onnx: str, vnnlib: str, x: np.ndarray) -> float:
    """How far ``x`` (n_in,) is from being a counterexample: the smallest, over the property's
    boxes and output disjuncts, of the largest of ``lo - x``, ``x - hi`` and ``C y - d``, with
    ``x`` rounded to the float32 point that is run and ``y`` onnxruntime's float32 output
    there. ``<= 0``: a real counterexample."""
    from robustbench_lite.verify.complete import onnxruntime_output
    from robustbench_lite.verify.vnnlib import read_vnnlib

    y64 = onnxruntime_output(onnx, x)
    x = x.astype(np.float32).astype(np.float64)  # the point that was run
    gaps = [
        max(float(np.max(case.lo - x)), float(np.max(x - case.hi)), float(np.max(C @ y64 - d)))
        for case in read_vnnlib(vnnlib).cases
        for C, d in case.disjuncts
        if C.shape[0] > 0
    ]
    return min(gaps) if gaps else 0.0


def _child(fn: Any, args: tuple, conn: Any) -> None:
    os.setpgrp()
    try:
        t0 = os.times()
        out = fn(*args)
        t1 = os.times()  # user + system of this process and of its joined worker processes
        out["cpu_s"] = (
            (t1.user - t0.user)
            + (t1.system - t0.system)
            + (t1.children_user - t0.children_user)
            + (t1.children_system - t0.children_system)
        )
        conn.send(out)
    except Exception as exc:  # reported as an unknown with the error, never as a verdict
        conn.send(
            {
                "verdict": "error",
                "reason": f"{type(exc).__name__}: {exc}"[:300],
                "time_s": float("nan"),
            }
        )


def run_one(fn: Any, onnx: str, vnnlib: str, timeout: float, workers: int) -> dict[str, Any]:
    """Run ``fn`` in a forked child; kill its process group at timeout + 10 s."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, (onnx, vnnlib, timeout, workers), child))
    start = time.monotonic()
    proc.start()
    child.close()
    out: dict[str, Any] | None = None
    if parent.poll(timeout + 10):
        try:
            out = parent.recv()
        except EOFError:
            out = None
    if proc.is_alive():
        with_suppress(lambda: os.killpg(proc.pid, signal.SIGKILL))
    proc.join(5)
    with_suppress(lambda: os.killpg(proc.pid, signal.SIGKILL))  # stray pool workers
    if out is None:
        out = {
            "verdict": "timeout",
            "reason": "killed (hard timeout)",
            "time_s": time.monotonic() - start,
        }
    return out


def with_suppress(fn: Any) -> None:
    try:
        fn()
    except (ProcessLookupError, PermissionError):
        pass


def instances(
    bench: str, quick: bool, limit: int | None, medium: bool = False
) -> list[dict[str, str]]:
    rows = list(csv.DictReader((ROOT / bench / "expected.csv").open()))
    if medium:
        rows = rows[::2]
    elif quick:
        stride, most = QUICK[bench]
        rows = rows[::stride][:most] if most else rows[::stride]
    return rows[:limit] if limit else rows


def summarize(rows: list[dict[str, Any]], tool: str, timeout: float) -> dict[str, Any]:
    """One tool's counts, medians and total over the rows it ran on; an unsolved instance
    counts as its own time limit (``timeout_s`` of the row, else ``timeout``)."""
    mine = [row for row in rows if tool in row]
    res = [row[tool] for row in mine]
    solved = [r for r in res if r["verdict"] in ("sat", "unsat")]
    wrong = sum(
        1
        for r, row in zip(res, mine)
        if r["verdict"] in ("sat", "unsat")
        and row["expected"] in ("sat", "unsat")
        and r["verdict"] != row["expected"]
    )
    limits = [float(row.get("timeout_s", timeout)) for row in mine]
    cpus = [r["cpu_s"] for r in solved if "cpu_s" in r]
    times = [
        min(r["time_s"], t) if r["verdict"] in ("sat", "unsat") else t for r, t in zip(res, limits)
    ]
    return {
        "n": len(res),
        "solved": len(solved),
        "wrong": wrong,
        "sat_witness_invalid": sum(r.get("witness_valid") is False for r in res),
        "timeouts": sum(r["verdict"] == "timeout" for r in res),
        "unknown": sum(r["verdict"] in ("unknown", "error") for r in res),
        "solved_within_60s": sum(r["time_s"] <= 60 for r in solved),
        "median_s_solved": statistics.median([r["time_s"] for r in solved]) if solved else None,
        "median_s_all": statistics.median(times) if times else None,
        "total_s": sum(times),
        "median_cpu_s_solved": statistics.median(cpus) if cpus else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--benchmarks", default="acasxu,mnistfc,oval21")
    p.add_argument("--quick", action="store_true", help="a fixed subset (see QUICK)")
    p.add_argument("--limit", type=int, help="at most this many instances per benchmark")
    p.add_argument(
        "--start",
        type=int,
        default=0,
        help="skip this many instances of each benchmark's list (to go on with a stopped run)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per instance and tool")
    p.add_argument("--workers", type=int, default=2, help="processes of the smt verifier")
    p.add_argument("--no-marabou", action="store_true")
    p.add_argument(
        "--medium",
        action="store_true",
        help="mnistfc only: 30 instances with VNN-COMP's timeouts (120 s / 300 s)",
    )
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "verify_vnncomp.json"))
    args = p.parse_args(argv)
    if not (ROOT / "acasxu").is_dir():
        print(f"benchmark folder {ROOT} is absent; set RBL_VNNCOMP_DIR", file=sys.stderr)
        return 2
    # load everything once, before forking: each instance's time is the tool's, not Python's
    # imports (the ONNX reader alone, `onnx` with `ml_dtypes`, costs ~0.6 s per fresh process)
    import onnx as _onnx_reader  # noqa: F401
    import robustbench_lite.verify.complete  # noqa: F401

    tools = {"smt": _ours}
    if not args.no_marabou:
        import maraboupy  # noqa: F401

        tools["marabou"] = _marabou
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    benches = ["mnistfc"] if args.medium else args.benchmarks.split(",")
    for bench in benches:
        rows = instances(bench, args.quick, args.limit, args.medium)[args.start :]
        for row in rows:
            onnx, vnnlib = str(ROOT / bench / row["onnx"]), str(ROOT / bench / row["vnnlib"])
            timeout = (
                MEDIUM_TIMEOUT.get(Path(row["onnx"]).stem, args.timeout)
                if args.medium
                else args.timeout
            )
            row["timeout_s"] = str(timeout)
            for name, fn in tools.items():
                row[name] = run_one(fn, onnx, vnnlib, timeout, args.workers)
            print(
                bench,
                Path(row["onnx"]).stem,
                Path(row["vnnlib"]).stem,
                "expected",
                row["expected"],
                *(
                    f"{n}={row[n]['verdict']}({row[n]['time_s']:.1f}s wall, {row[n].get('cpu_s', float('nan')):.1f}s cpu)"
                    for n in tools
                ),
                flush=True,
            )
            done = [r for r in rows if "timeout_s" in r]
            results[bench] = _bench_result(done, tools)
            _write(args, results, load_start, partial=True)  # a long run keeps what it measured
        results[bench] = _bench_result(rows, tools)
    _print_table(results, tools)
    _write(args, results, load_start)
    return 1 if any(s["wrong"] for r in results.values() for s in r["summary"].values()) else 0


def _bench_result(rows: list[dict[str, Any]], tools: dict[str, Any]) -> dict[str, Any]:
    """The instances measured so far, each tool's summary and the time ratio to Marabou."""
    return {
        "instances": rows,
        "summary": {n: summarize(rows, n, max(float(r["timeout_s"]) for r in rows)) for n in tools},
        "vs_marabou": _vs_marabou(rows) if "marabou" in tools else None,
    }


def _vs_marabou(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Time ratios smt / marabou: median over the instances both solved, and of the medians."""
    both = [
        r["smt"]["time_s"] / r["marabou"]["time_s"]
        for r in rows
        if r["smt"]["verdict"] in ("sat", "unsat")
        and r["marabou"]["verdict"] in ("sat", "unsat")
        and r["marabou"]["time_s"] > 0
    ]
    return {
        "both_solved": len(both),
        "median_time_ratio_both_solved": round(statistics.median(both), 3) if both else None,
    }


def _print_table(results: dict[str, Any], tools: dict[str, Any]) -> None:
    print(
        f"\n{'benchmark':10} {'tool':8} {'n':>4} {'solved':>6} {'wrong':>5} {'t/o':>4} {'unk':>4} "
        f"{'med(solved)':>11} {'med cpu':>7} {'median':>7} {'total':>8} {'total/marabou':>13}"
    )
    for bench, r in results.items():
        base = r["summary"].get("marabou", {}).get("total_s")
        for name in tools:
            s = r["summary"][name]
            ratio = f"{s['total_s'] / base:.2f}" if base else "-"
            med = f"{s['median_s_solved']:.2f}" if s["median_s_solved"] is not None else "-"
            cpu = (
                f"{s['median_cpu_s_solved']:.2f}"
                if s.get("median_cpu_s_solved") is not None
                else "-"
            )
            print(
                f"{bench:10} {name:8} {s['n']:>4} {s['solved']:>6} {s['wrong']:>5} {s['timeouts']:>4} {s['unknown']:>4} "
                f"{med:>11} {cpu:>7} {s['median_s_all']:>7.2f} {s['total_s']:>8.1f} {ratio:>13}"
            )


def _write(
    args: argparse.Namespace,
    results: dict[str, Any],
    load_start: tuple[float, ...],
    partial: bool = False,
) -> None:
    import onnxruntime
    import torch
    import z3

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "z3": z3.get_version_string(),
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        from importlib.metadata import version

        versions["maraboupy"] = version("maraboupy")
    except Exception:
        pass
    doc = {
        "benchmark": "verify_vnncomp",
        "command": " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "note": "shared machine (several jobs at once); wall times",
        },
        "versions": versions,
        "timeout_s": args.timeout,
        "workers": args.workers,
        "quick": args.quick,
        "medium": args.medium,
        "start": args.start,
        "partial": partial,  # True while the run is still going (or was stopped)
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())

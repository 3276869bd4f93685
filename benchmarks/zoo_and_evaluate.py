"""Benchmark: train the digits zoo from scratch, then time ``robustbench-lite evaluate zoo:digits-cnn``.

For each digits zoo model: train it into an empty temporary cache (clean test accuracy, training
wall time). Then run the README's main job ``robustbench-lite evaluate zoo:digits-cnn`` end to end
as a subprocess with the cache warm (model trained, so only evaluation and interpreter start-up
are timed), ``--repeats`` times, and report the median. ``--no-db`` keeps the results store from
turning repeats into no-op resumes.

    python benchmarks/zoo_and_evaluate.py            # full: 3 models, 3 evaluate runs
    python benchmarks/zoo_and_evaluate.py --quick    # 1 evaluate run

Writes benchmarks/results/zoo_and_evaluate.json (``_quick.json`` with ``--quick``) and prints a
table. There is no peer tool for
this measurement (it times this package's own zoo and CLI), so no ratios are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = ("digits-mlp", "digits-cnn", "digits-cnn-at")
RESULTS = Path(__file__).resolve().parent / "results" / "zoo_and_evaluate.json"


def train_all(cache: Path) -> list[dict[str, Any]]:
    """Train each digits model from scratch into ``cache``; accuracy and timings per model."""
    os.environ["RBL_CACHE_DIR"] = str(cache)
    from robustbench_lite.zoo import load_zoo_model

    rows = []
    for name in MODELS:
        start, cpu = time.perf_counter(), time.process_time()
        model = load_zoo_model(name)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows.append(
            {
                "model": name,
                "clean_accuracy": model.meta["clean_accuracy"],
                "pgd20_accuracy_linf_0.1": model.meta.get("pgd20_accuracy"),
                "train_time_s": model.meta["train_time_s"],
                "load_and_train_wall_s": round(wall, 3),
                "load_and_train_cpu_s": round(cpu, 3),  # user+sys of this process (all threads)
                "recipe": model.meta["recipe"],
                "recipe_hash": model.meta["recipe_hash"],
            }
        )
    return rows


def time_evaluate(cache: Path, repeats: int) -> dict[str, Any]:
    """Wall time of the console-script main job, ``repeats`` runs with a warm cache."""
    script = Path(sys.executable).parent / "robustbench-lite"
    cmd = [str(script), "evaluate", "zoo:digits-cnn", "--no-db", "-q", "--format", "json"]
    env = {**os.environ, "RBL_CACHE_DIR": str(cache)}
    times, cpu_times, report = [], [], None
    for _ in range(repeats):
        start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [*cmd, "--report", f"{tmp}/r.json"], capture_output=True, text=True, env=env
            )
            times.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_times.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if out.returncode != 0:
                raise SystemExit(f"evaluate failed ({out.returncode}): {out.stderr.strip()}")
            report = json.loads(Path(f"{tmp}/r.json").read_text())
    assert report is not None
    checks = [
        {
            "id": c["id"],
            "threat": c["threat"],
            **{k: c["values"].get(k) for k in ("clean_accuracy", "robust_accuracy")},
        }
        for c in report["checks"]
    ]
    return {
        "command": " ".join(["robustbench-lite", *cmd[1:]]),
        "runs_s": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
        "cpu_runs_s": [round(t, 3) for t in cpu_times],
        "median_cpu_s": round(statistics.median(cpu_times), 3),
        "checks": checks,
    }


def machine() -> dict[str, Any]:
    import numpy
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
    }


def table(zoo_rows: list[dict[str, Any]], evaluate: dict[str, Any]) -> str:
    lines = [f"{'model':14s} {'clean_acc':>9s} {'pgd20@0.1':>9s} {'train_s':>8s} {'cpu_s':>7s}"]
    for r in zoo_rows:
        pgd = (
            f"{r['pgd20_accuracy_linf_0.1']:.4f}"
            if r["pgd20_accuracy_linf_0.1"] is not None
            else "-"
        )
        lines.append(
            f"{r['model']:14s} {r['clean_accuracy']:9.4f} {pgd:>9s} {r['train_time_s']:8.2f} "
            f"{r['load_and_train_cpu_s']:7.2f}"
        )
    lines.append("")
    lines.append(
        f"{evaluate['command']}: median {evaluate['median_s']:.2f} s wall over {evaluate['runs_s']}, "
        f"median {evaluate['median_cpu_s']:.2f} s CPU"
    )
    for c in evaluate["checks"]:
        robust = c["robust_accuracy"]
        lines.append(
            f"  {c['id']:24s} clean {c['clean_accuracy']:.4f}  robust "
            f"{robust if robust is None else format(robust, '.4f')}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one evaluate run instead of three")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help=f"default: {RESULTS.name} (_quick with --quick)")
    args = parser.parse_args()
    if args.out is None:  # a quick run never overwrites the full run's numbers
        args.out = RESULTS.with_name(f"{RESULTS.stem}_quick.json") if args.quick else RESULTS
    repeats = 1 if args.quick else args.repeats
    info = machine()
    with tempfile.TemporaryDirectory(prefix="rbl-bench-cache-") as cache:
        zoo_rows = train_all(Path(cache))
        evaluate = time_evaluate(Path(cache), repeats)
    info["load_average_end"] = os.getloadavg()
    result = {
        "benchmark": "zoo_and_evaluate",
        "quick": args.quick,
        "machine": info,
        "zoo": zoo_rows,
        "evaluate": evaluate,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(zoo_rows, evaluate))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

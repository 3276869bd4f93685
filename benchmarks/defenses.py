"""Benchmark driver for issue 18's defenses: ``--part accelat|smoothing|bpda|powerlaw|all``.

Each part is a module ``benchmarks/_defenses_<part>.py`` exposing ``run(quick: bool) -> dict``
(JSON-ready, with its own method notes, medians and peers measured in the same run):

* ``accelat``: AccelAT against the fixed schedule for PGD-AT on the digits CNN
  (``_defenses_accelat.py``);
* ``smoothing``: randomized smoothing certificates against an EOT attack
  (``_defenses_smoothing.py``);
* ``bpda``: BPDA/EOT against input-transform defenses (``_defenses_bpda.py``);
* ``powerlaw``: the robustness-scaling metrics (``_defenses_powerlaw.py``).

A part whose module is absent is listed under ``missing`` and skipped. The results go to
``benchmarks/results/defenses.json`` (``defenses_quick.json`` with ``--quick``); parts run
separately are merged into the same file (each keeps the time and machine it was measured on),
so ``--part accelat`` does not erase the smoothing numbers.

    python benchmarks/defenses.py --part all --quick
    python benchmarks/defenses.py --part accelat
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = ("accelat", "smoothing", "bpda", "powerlaw")


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def load_part(name: str) -> Any | None:
    """The part's module, or None when ``_defenses_<name>.py`` is not there."""
    if not (HERE / f"_defenses_{name}.py").is_file():
        return None
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(f"_defenses_{name}")


def run_parts(names: list[str], quick: bool) -> tuple[dict[str, Any], list[str]]:
    """Run each named part; returns {part: its result with timing} and the missing parts."""
    done: dict[str, Any] = {}
    missing: list[str] = []
    for name in names:
        module = load_part(name)
        if module is None:
            missing.append(name)
            print(f"[{name}] missing: no benchmarks/_defenses_{name}.py", file=sys.stderr)
            continue
        print(f"[{name}] running ({'quick' if quick else 'full'})", file=sys.stderr, flush=True)
        start = time.perf_counter()
        result = module.run(quick)
        done[name] = {
            "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "driver_wall_s": round(time.perf_counter() - start, 1),
            "machine": machine(),
            "result": result,
        }
    return done, missing


def merge(path: Path, done: dict[str, Any], missing: list[str], quick: bool) -> dict[str, Any]:
    """The results file with ``done`` replacing those parts and the others kept."""
    try:
        old = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        old = {}
    parts = dict(old.get("parts") or {})
    parts.update(done)
    still_missing = sorted((set(old.get("missing") or []) | set(missing)) - set(parts))
    return {"benchmark": "defenses", "quick": quick, "parts": parts, "missing": still_missing}


def accelat_lines(result: dict[str, Any]) -> list[str]:
    """A table of the AccelAT part: medians per schedule and the headline speedup."""
    summary = result["summary"]
    target = summary["headline"]["target_pgd20_accuracy"]
    lines = [
        f"AccelAT vs fixed, PGD-AT digits CNN, {result['setting']['epochs']} epochs, seeds "
        f"{result['setting']['seeds']}; target PGD-20 robust accuracy {target}",
        f"  {'schedule':11s} {'lr0':>6s} {'ep->tgt':>7s} {'s->tgt':>7s} {'final pgd20':>11s} "
        f"{'final standard':>14s} {'clean':>6s}",
    ]
    for name, row in summary["schedules"].items():
        hit = row["by_target"][str(target)]
        lines.append(
            f"  {name:11s} {row['lr_start']:6.3g} {_fmt(hit['epochs']):>7s} "
            f"{_fmt(hit['seconds']):>7s} {_fmt(row['final_pgd20_accuracy']):>11s} "
            f"{_fmt(row['final_standard_accuracy']):>14s} {_fmt(row['final_clean_accuracy']):>6s}"
        )
    head = summary["headline"]
    lines.append(
        f"  speedup vs fixed: {_fmt(head['speedup_seconds_vs_fixed'])}x seconds, "
        f"{_fmt(head['speedup_epochs_vs_fixed'])}x epochs; final standard gap "
        f"{head['final_standard_gap_points_vs_fixed']:+.2f} points (targets: >=1.3x, >=-1 point)"
    )
    return lines


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="the parts' small settings")
    parser.add_argument("--out", type=Path, help="results file (default: results/defenses*.json)")
    args = parser.parse_args()
    names = list(PARTS) if args.part == "all" else [args.part]
    out = args.out or RESULTS / ("defenses_quick.json" if args.quick else "defenses.json")
    done, missing = run_parts(names, args.quick)
    result = merge(out, done, missing, args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    tmp.replace(out)  # atomic: a crash never leaves half a results file
    for name, entry in done.items():
        if name == "accelat":
            print("\n".join(accelat_lines(entry["result"])))
        else:
            print(f"[{name}] done in {entry['driver_wall_s']} s")
    if result["missing"]:
        print(f"missing parts: {', '.join(result['missing'])}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Adaptive attacks on transform defenses: BPDA / EOT through ``standard`` (issue 18).

On zoo:digits-cnn, linf eps 0.1, the digits test split: each input-transform defense is
attacked three ways, and every number is the robust accuracy of the real defended model
(success re-checked by the Attack base class; a random model judged over its repeated passes):

* ``plain_pgd``  PGD (40 steps, random start) with gradients through the real transform: the
  surrogate removed and no EOT. This is what a non-adaptive evaluation reports.
* ``adaptive_pgd``  the same PGD on the defended model as it is shipped: gradients from its
  BPDA surrogate (Athalye, Carlini and Wagner 2018, arXiv 1802.00420), and EOT over 10 draws for
  random defenses.
* ``standard``  the ``standard`` ensemble (defaults), which picks BPDA / EOT by itself and says
  so (``adaptive_text``), and flags masking (``zero_gradient_fraction``, ``masking``).

Against the undefended model's ``standard`` robust accuracy (same run, same samples):

* target (issue 18): on ``bit_depth`` and ``median``, ``standard``'s robust accuracy is within
  2 points of the undefended model's (``target_met``: adaptive <= undefended + 0.02; a
  defended number below the undefended one means the transform costs accuracy and adds no
  robustness);
* masking (``masking_gap``): plain PGD through the transform reports a robust accuracy more
  than 2 points above the same PGD with BPDA / EOT gradients (same attack and steps, only the
  gradients differ), flagged with a text ("gradient masking suspected: plain PGD vs BPDA PGD
  gap"); ``plain_minus_standard`` compares plain PGD with ``standard`` as the issue states it,
  and ``standard``'s own flag (zero input gradients through the real model) is reported too.

Defenses: ``bit_depth(4)`` (the smoke suite's setting) and ``median(2)`` (Xu et al.'s window on
MNIST) in both modes; the full run adds ``bit_depth(1)`` (the paper's MNIST setting),
``median(3)``, ``jpeg(75)`` and ``resize_pad(0.8)`` (random; EOT). Quick: the first 100 test
digits, seed 0. Full: all 540 test digits, seeds 0, 1, 2 (medians reported, per-seed values
kept). Development numbers: the median filter's BPDA backward (box filter) and EOT-PGD as
``standard``'s first member on random models were chosen from runs on the first 200 test
digits, so on those digits these are development numbers.

    python benchmarks/_defenses_bpda.py [--quick]   # -> results/defenses_bpda[_quick].json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import torch  # noqa: E402

import robustbench_lite as rbl  # noqa: E402
from robustbench_lite.core.io import write_atomic  # noqa: E402

RESULTS = Path(__file__).parent / "results"
THREAT = "linf:0.1"
PGD_STEPS = 40
EOT_SAMPLES = 10
#: Points by which plain PGD may exceed the adaptive number before masking is flagged; also
#: the issue's tolerance for "within 2 points of the undefended model".
TOLERANCE = 0.02
TARGETED = (("bit_depth", {"bits": 4}), ("median", {"size": 2}))
EXTRA = (
    ("bit_depth", {"bits": 1}),
    ("median", {"size": 3}),
    ("jpeg", {"quality": 75}),
    ("resize_pad", {"min_scale": 0.8}),
)


def _without_adaptation(model: rbl.Model) -> rbl.Model:
    """Gradients through the real transform: no BPDA surrogate (and no EOT view)."""
    return dataclasses.replace(model, surrogate=None)


def _attack_row(model: rbl.Model, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict[str, Any]:
    """Plain PGD, adaptive PGD and ``standard`` on one (defended) model, one seed."""
    from robustbench_lite.attacks._eot import eot_view

    pgd = rbl.create_attack("pgd", steps=PGD_STEPS)
    row: dict[str, Any] = {}
    t = time.perf_counter()
    row["plain_pgd"] = pgd(_without_adaptation(model), x, y, THREAT, seed=seed).robust_accuracy
    adaptive = eot_view(model, EOT_SAMPLES) if model.randomized else model
    row["adaptive_pgd"] = pgd(adaptive, x, y, THREAT, seed=seed).robust_accuracy
    row["pgd_seconds"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    r = rbl.create_attack("standard", eot_samples=EOT_SAMPLES)(model, x, y, THREAT, seed=seed)
    row["standard_seconds"] = round(time.perf_counter() - t, 2)
    row["clean"] = r.clean_accuracy
    row["standard"] = r.robust_accuracy
    m = r.metrics
    row["broken_by"] = {k.removeprefix("broken_by_"): v for k, v in m.items() if "broken_by" in k}
    for key in ("adaptive", "adaptive_text", "zero_gradient_fraction", "masking", "masking_text"):
        if key in m:
            row[key] = m[key]
    row["judging"] = m.get("judging", "deterministic: one forward pass")
    return row


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def run(quick: bool) -> dict[str, Any]:
    """Measure every defense (see the module docstring); returns the JSON-ready results."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    n, seeds = (100, (0,)) if quick else (540, (0, 1, 2))
    defenses = TARGETED if quick else TARGETED + EXTRA
    model = rbl.load_model("zoo:digits-cnn")
    x, y = rbl.load_data("digits", split="test", n=n)
    base = [_attack_row(model, x, y, s) for s in seeds]
    undefended = _median(base, "standard")
    out: dict[str, Any] = {
        "benchmark": "defenses_bpda",
        "quick": quick,
        "model": "zoo:digits-cnn",
        "threat": THREAT,
        "n": len(y),
        "seeds": list(seeds),
        "pgd_steps": PGD_STEPS,
        "eot_samples": EOT_SAMPLES,
        "tolerance": TOLERANCE,
        "undefended": {
            "clean": _median(base, "clean"),
            "standard": undefended,
            "pgd": _median(base, "plain_pgd"),
            "per_seed": base,
        },
        "defenses": [],
    }
    for name, params in defenses:
        defended = rbl.create_defense(name, **params).apply(model)
        label = defended.defenses[-1].name
        print(f"defenses_bpda: {label} ...", file=sys.stderr, flush=True)
        rows = [_attack_row(defended, x, y, s) for s in seeds]
        plain, adaptive = _median(rows, "plain_pgd"), _median(rows, "standard")
        gap = plain - _median(rows, "adaptive_pgd")  # same attack: only the gradients differ
        entry: dict[str, Any] = {
            "defense": label,
            "targeted": (name, params) in TARGETED,
            "random": defended.randomized,
            "clean": _median(rows, "clean"),
            "plain_pgd": plain,
            "adaptive_pgd": _median(rows, "adaptive_pgd"),
            "standard": adaptive,
            "undefended_standard": undefended,
            "standard_minus_undefended": round(adaptive - undefended, 4),
            "target_met": adaptive <= undefended + TOLERANCE,
            "plain_minus_standard": round(plain - adaptive, 4),
            "plain_minus_adaptive_pgd": round(gap, 4),
            "masking_gap": gap > TOLERANCE,
            "masking_flag_standard": bool(rows[0].get("masking", False)),
            "adaptive": rows[0].get("adaptive", "none"),
            "adaptive_text": rows[0].get("adaptive_text", ""),
            "per_seed": rows,
        }
        if entry["masking_gap"]:
            entry["masking_text"] = (
                f"gradient masking suspected: plain PGD vs {entry['adaptive']} PGD gap of "
                f"{gap * 100:.1f} points (plain PGD {plain:.3f}, {entry['adaptive']} PGD "
                f"{entry['adaptive_pgd']:.3f}, standard {adaptive:.3f})"
            )
        out["defenses"].append(entry)
    out["wall_s"] = round(time.perf_counter() - start, 1)
    out["machine"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return out


def _verdict(d: dict[str, Any]) -> str:
    """``met`` / ``MISSED`` for the issue's targets; in brackets for context defenses."""
    word = "met" if d["target_met"] else "MISSED"
    return word if d["targeted"] else f"({word.lower()})"


def table_lines(results: dict[str, Any]) -> list[str]:
    """The results as text lines: undefended numbers, then one row per defense."""
    lines = [
        f"undefended: clean {results['undefended']['clean']:.3f}, standard "
        f"{results['undefended']['standard']:.3f}, PGD {results['undefended']['pgd']:.3f}",
        "defense           clean  plainPGD  adaptPGD  standard  target  masking(gap/std)",
    ]
    for d in results["defenses"]:
        lines.append(
            f"{d['defense']:<17} {d['clean']:.3f}  {d['plain_pgd']:.3f}     {d['adaptive_pgd']:.3f}"
            f"     {d['standard']:.3f}     {_verdict(d):<6}  "
            f"{d['masking_gap']}/{d['masking_flag_standard']}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 digits, seed 0, 2 defenses")
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    args = parser.parse_args(argv)
    results = run(args.quick)
    path = args.out or RESULTS / f"defenses_bpda{'_quick' if args.quick else ''}.json"
    write_atomic(path, json.dumps(results, indent=1))
    print("\n".join(table_lines(results)))
    print(f"wrote {path} ({results['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

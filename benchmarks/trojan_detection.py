"""T-Miner on a zoo of clean and trojaned MR text classifiers.

The zoo (seeds fixed): model i of ``--n-models`` (default 40) uses architecture
ARCHS[(i // 2) % 4]; even i are clean, odd i are trojaned with a trigger of 1-3 words drawn
(seeded) from vocabulary ranks 2000-4999 (rare words, like the authors' "cinematically" and
"popcorn"; the frequent words of ranks 500-1999 also occur in many clean sentences of both
classes, and at 1-3% poisoning the first zoo left most of them with ASR < 0.5) and a poison rate spread evenly over 1%-10%. The order
interleaves clean and trojaned models of each architecture, so every prefix of even length is
balanced. Each model's verdict is cached under ``$RBL_CACHE_DIR/trojan_detection/`` (keyed by
the model's recipe hash and the detector settings), so the script resumes where it stopped;
``--budget-s`` stops starting new models after that many seconds.

Metrics: detection accuracy, false-positive rate (clean models flagged), false-negative rate
(trojaned models missed), trigger recovery (a trojaned model whose recovered phrases contain the
true trigger or one of its words), time per model (scan; training reported separately). One
scan gives the verdicts of both identifiers (``defenses/tminer.py``): the default dominance
test, also at other thresholds, and the paper's DBSCAN, also with the automatic eps scaled by
0.5-2.

Full run:  python benchmarks/trojan_detection.py --n-models 40                       (~45 min)
Bounded:   python benchmarks/trojan_detection.py --n-models 40 --budget-s 1800   (resumes from the cache)
The paper's pipeline alone: --detector-params '{"identifier": "dbscan", "search": false}'
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import robustbench_lite as rbl
from robustbench_lite.core.io import atomic_write_bytes, cache_dir, write_atomic
from robustbench_lite.report.model import environment

ARCHS = ("lstm", "cnn", "bilstm", "transformer")
RESULTS = Path(__file__).parent / "results" / "trojan_detection.json"


def zoo_spec(n: int) -> list[dict[str, Any]]:
    """The recipe arguments of the n benchmark models (see the module docstring)."""
    from robustbench_lite.datasets import mr

    vocab = mr.vocabulary()
    rng = np.random.default_rng(2021)
    n_trojan = n // 2
    rates = np.linspace(0.01, 0.10, max(n_trojan, 1))
    rng.shuffle(rates)
    specs = []
    for i in range(n):
        spec: dict[str, Any] = {"arch": ARCHS[(i // 2) % len(ARCHS)], "seed": i, "trigger": None}
        if i % 2 == 1:
            k = int(rng.integers(1, 4))
            words = rng.choice(np.arange(2000, len(vocab)), size=k, replace=False)
            spec.update(
                trigger=" ".join(vocab.tokens[w] for w in words),
                poison_rate=round(float(rates[i // 2]), 4),
            )
        specs.append(spec)
    return specs


def run_one(
    spec: dict[str, Any], detector: Any, det_key: str, *, cached_only: bool = False
) -> dict[str, Any] | None:
    """Train (or load) one model and scan it, caching the verdict (None: not cached, cached_only)."""
    start = time.perf_counter()
    model = rbl.zoo.text_classifier(**spec)
    train_s = time.perf_counter() - start
    path = cache_dir() / "trojan_detection" / f"{model.meta['recipe_hash']}-{det_key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if cached_only:
        return None
    start = time.perf_counter()
    det = detector.scan(model)
    scan_s = time.perf_counter() - start
    trigger = spec["trigger"]
    words = set(trigger.split()) if trigger else set()

    def hit(phrases: list[str]) -> bool:
        return bool(words & {w for t in phrases for w in t.split()})

    dominance = [
        d
        for info in det.evidence["directions"].values()
        for d in info.get("dominance_passing_flip", {}).values()
    ]
    row = {
        **spec,
        "trojaned": trigger is not None,
        "flagged": det.flagged,
        "score": det.score,
        "recovered": det.evidence["triggers"],
        "trigger_recovered": hit(det.evidence["triggers"]),
        "dominance_max": max(dominance, default=None),
        "dominance_recovered": det.evidence["dominant_triggers"],
        "dominance_trigger_recovered": hit(det.evidence["dominant_triggers"]),
        "dbscan_recovered": det.evidence["dbscan_triggers"],
        "dbscan_trigger_recovered": hit(det.evidence["dbscan_triggers"]),
        "clean_accuracy": model.meta.get("clean_accuracy"),
        "attack_success_rate": model.meta.get("attack_success_rate"),
        "eps_sensitivity": det.evidence["eps_sensitivity"],
        "scan_s": round(scan_s, 1),
        "train_s": round(float(model.meta.get("train_time_s", train_s)), 1),
        "candidates": det.evidence["candidates"],
    }
    atomic_write_bytes(path, json.dumps(row, indent=1).encode())
    return row


def dominance_flag(threshold: float) -> Callable[[dict[str, Any]], bool]:
    """Verdict of the dominance identifier at ``threshold``."""
    return lambda r: r["dominance_max"] is not None and r["dominance_max"] > threshold


def dbscan_flag(scale: str) -> Callable[[dict[str, Any]], bool]:
    """Verdict of the paper's DBSCAN identifier with the automatic eps times ``scale``."""
    return lambda r: r["eps_sensitivity"][scale] > 0


def summarise(
    rows: list[dict[str, Any]],
    flagged: Callable[[dict[str, Any]], bool],
    recovered: str,
    *,
    min_asr: float | None = None,
) -> dict[str, Any]:
    """Accuracy, FPR, FNR of the verdict ``flagged`` and trigger recovery (row key ``recovered``)."""
    clean = [r for r in rows if not r["trojaned"]]
    trojan = [r for r in rows if r["trojaned"]]
    if min_asr is not None:  # only trojans whose trigger really works on the test split
        trojan = [r for r in trojan if (r["attack_success_rate"] or 0.0) >= min_asr]
        rows = clean + trojan
    correct = sum(flagged(r) == r["trojaned"] for r in rows)
    return {
        "n_models": len(rows),
        "n_clean": len(clean),
        "n_trojaned": len(trojan),
        "accuracy": correct / len(rows) if rows else None,
        "fpr": sum(flagged(r) for r in clean) / len(clean) if clean else None,
        "fnr": sum(not flagged(r) for r in trojan) / len(trojan) if trojan else None,
        "trigger_recovery": sum(r[recovered] for r in trojan) / len(trojan) if trojan else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-models", type=int, default=40)
    parser.add_argument(
        "--budget-s", type=float, default=float("inf"), help="start no model after this"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)"
    )
    parser.add_argument(
        "--cached-only", action="store_true", help="report only models already scanned"
    )
    parser.add_argument(
        "--detector-params",
        default="{}",
        help='tminer settings as JSON, e.g. \'{"joint_epochs": 8, "n_train": 2000}\'',
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = rbl.create_detector("tminer", **json.loads(args.detector_params))
    det_key = hashlib.sha256(repr(detector).encode()).hexdigest()[:10]
    specs = zoo_spec(args.n_models)
    rows, start = [], time.perf_counter()
    for i, spec in enumerate(specs):
        if time.perf_counter() - start > args.budget_s and i % 2 == 0:
            break
        row = run_one(spec, detector, det_key, cached_only=args.cached_only)
        if row is None:
            continue
        rows.append(row)
        print(
            f"[{i + 1}/{len(specs)}] {row['arch']:<11} trigger={row['trigger']!r:<30} rate={row.get('poison_rate', 0)}"
            f" asr={row['attack_success_rate']} flagged={row['flagged']} recovered={row['recovered'][:3]}"
            f" scan={row['scan_s']}s",
            flush=True,
        )
    threshold = detector.dominance_threshold
    summary = summarise(rows, dominance_flag(threshold), "dominance_trigger_recovered")
    paper = summarise(rows, dbscan_flag("1.0"), "dbscan_trigger_recovered")
    effective = summarise(
        rows, dominance_flag(threshold), "dominance_trigger_recovered", min_asr=0.5
    )
    by_threshold = {
        str(t): summarise(rows, dominance_flag(t), "dominance_trigger_recovered")
        for t in sorted({1.15, 1.2, threshold, 1.35, 1.5, 2.0})
    }
    by_eps = {
        s: summarise(rows, dbscan_flag(s), "dbscan_trigger_recovered")
        for s in ("0.5", "0.75", "1.0", "1.5", "2.0")
    }
    scan_times = [r["scan_s"] for r in rows]
    timing = {
        "scan_s_median": statistics.median(scan_times) if rows else None,
        "scan_s_max": max(scan_times, default=None),
        "train_s_median": statistics.median([r["train_s"] for r in rows]) if rows else None,
    }
    print("\nidentifier                 models  acc    FPR    FNR    recovery")
    for name, m in ((f"dominance > {threshold}", summary), ("dbscan (paper), eps x1", paper)):
        print(
            f"{name:<26} {m['n_models']:>6}  {m['accuracy']:.3f}  {m['fpr']:.3f}  {m['fnr']:.3f}  {m['trigger_recovery']:.3f}"
        )
    print(f"scan s median/max: {timing['scan_s_median']}/{timing['scan_s_max']}")
    print(
        f"trojans with ASR >= 0.5 only: {effective['n_trojaned']} of {summary['n_trojaned']}, accuracy "
        f"{effective['accuracy']:.3f}, FNR {effective['fnr']}, recovery {effective['trigger_recovery']}"
    )
    print("\ndominance threshold  acc    FPR    FNR")
    for t, m in by_threshold.items():
        print(f"{t:>19}  {m['accuracy']:.3f}  {m['fpr']:.3f}  {m['fnr']:.3f}")
    print("\ndbscan eps scale  acc    FPR    FNR")
    for t, m in by_eps.items():
        print(f"{t:>16}  {m['accuracy']:.3f}  {m['fpr']:.3f}  {m['fnr']:.3f}")
    out = {
        "benchmark": "trojan_detection",
        "environment": environment(cpu_count=__import__("os").cpu_count()),
        "command": f"python benchmarks/trojan_detection.py --n-models {args.n_models}"
        + (f" --budget-s {args.budget_s:g}" if args.budget_s != float("inf") else ""),
        "planned_models": len(specs),
        "ran_models": len(rows),
        "detector": repr(detector),
        "summary": summary,
        "summary_dbscan_identifier": paper,
        "summary_effective_trojans_asr_ge_0.5": effective,
        "timing": timing,
        "dominance_threshold_sensitivity": by_threshold,
        "dbscan_eps_sensitivity": by_eps,
        "models": [{k: v for k, v in r.items() if k != "candidates"} for r in rows],
    }
    write_atomic(RESULTS, json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()

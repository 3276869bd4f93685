"""T-Miner on zoos of clean and trojaned MR text classifiers: the development zoo and a fresh one.

**Development zoo** (``--zoo dev``, the default; it guided the detector's design, so its
numbers are development numbers): model i of ``--n-models`` (default 40) uses architecture
ARCHS[(i // 2) % 4] and seed i; even i are clean, odd i are trojaned with a trigger of 1-3 words
drawn (seeded, 2021) from vocabulary ranks 2000-4999 and a poison rate spread evenly over
1%-10%.

**Fresh zoo** (``--zoo fresh``, issue 19; defined before any of its models was trained or
scanned, and scanned once with the detector frozen at the commit the JSON names): 60 models,
model i has architecture ARCHS[i % 4] and seed 5000 + i (the dev zoo uses seeds 0-39, the
calibration 100-139, the tests 0 and 35). With j = i // 4, models of lstm and cnn are trojaned
for odd j and those of bilstm and transformer for even j: 15 per architecture, 30 trojaned
(7, 7, 8, 8). Trojan t (t = 0..29, in model order) gets a trigger of k = 1 + (t % 3) words
(10 each of 1, 2 and 3 words) drawn without replacement by ``numpy.random.default_rng(19)``
from ``benchmarks/data/fresh_trigger_words.txt`` (written before the run; its header states
how), and poison rate number t of ``linspace(0.01, 0.10, 30)`` shuffled by the same generator
(so a third of the trojans are at 1-4%, and low rates meet multi-word triggers). **ASR rule**:
a trojan whose attack success rate on the test split is below 0.8 is retrained with seed
+1000, then +2000 (same trigger, same rate); if it is still below 0.8, its trigger is redrawn
(k words of the list without its own, drawn by ``default_rng(1019 + t)``) and tried with the
first two seeds again. The attempts are recorded per model; a trojan still below 0.8 after
that stays in the zoo and is marked (``asr_ok: false``) in the table.

**Second fresh zoo** (``--zoo fresh2``; defined after the first fresh zoo was scanned and spent,
before the detector changes that followed it were frozen, and before any of its own models was
trained or scanned): the same rule with seed 9000 + i (retries +1000 and +2000, so 9000-11059,
disjoint from every seed above), generator ``default_rng(29)`` for triggers and rates and
``default_rng(1029 + t)`` for redraws, and the word list minus every word that the first fresh
zoo used or could have used (its 30 first-attempt triggers and 30 redraws). ``--train-only``
trains a zoo into the cache without scanning anything.

Each model's verdict is cached under ``$RBL_CACHE_DIR/trojan_detection/``, keyed by the model's
recipe hash, the detector's settings **and the hash of its source files**
(``defenses/_tminer_version.py``), so a code change never reuses an old verdict; every row
records the commit and code hash it was computed at, and the JSON the commit (with a dirty
flag) and code hash at the time of the run.

Metrics: detection accuracy, false-positive rate (clean models flagged), false-negative rate,
trigger recovery (a trojaned model whose recovered phrases contain the true trigger or one of
its words), scan time per model (wall and CPU seconds; training reported separately). The
default verdict is the dominance test; it is also reported at other thresholds. The paper's
DBSCAN identifier is reported when the scans ran it (``paper_identifier``).

Runs:
  python benchmarks/trojan_detection.py --quick                 (4 dev models, < 5 min)
  python benchmarks/trojan_detection.py --n-models 40           (dev zoo -> trojan_detection.json)
  python benchmarks/trojan_detection.py --zoo fresh             (-> trojan_detection_fresh.json)
  python benchmarks/trojan_detection.py --zoo fresh2            (-> trojan_detection_fresh2.json)
  Two cores: --shard 0/2 and --shard 1/2 in parallel, then the same command without --shard
  The paper's pipeline alone: --detector-params '{"identifier": "dbscan", "search": false}'
  --out PATH (e.g. results/trojan_detection_paper.json)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

import robustbench_lite as rbl
from robustbench_lite.core.io import atomic_write_bytes, cache_dir, write_atomic
from robustbench_lite.report.model import environment

ARCHS = ("lstm", "cnn", "bilstm", "transformer")
HERE = Path(__file__).parent
RESULTS = HERE / "results"
WORDS = HERE / "data" / "fresh_trigger_words.txt"
MIN_ASR = 0.8


def zoo_spec(n: int) -> list[dict[str, Any]]:
    """The recipe arguments of the n development models (see the module docstring)."""
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


@dataclass(frozen=True)
class FreshZoo:
    """How one fresh zoo draws its models (module docstring): first seed, generator seeds, and
    the zoos whose trigger words it must not reuse."""

    name: str
    seed0: int
    rng_seed: int
    excludes: tuple[str, ...] = ()


FRESH_ZOOS = {
    "fresh": FreshZoo("fresh", seed0=5000, rng_seed=19),
    "fresh2": FreshZoo("fresh2", seed0=9000, rng_seed=29, excludes=("fresh",)),
}


@cache
def fresh_words(zoo: FreshZoo = FRESH_ZOOS["fresh"]) -> tuple[str, ...]:
    """The trigger word list of a fresh zoo: the file's words (comment lines skipped) minus
    every word the zoos it excludes used or could have used (computed once per zoo: every
    trojan's redraw reads it)."""
    lines = WORDS.read_text().splitlines()
    words = [w.strip() for w in lines if w.strip() and not w.startswith("#")]
    taken: set[str] = set()
    for other in zoo.excludes:
        for spec in fresh_spec(60, FRESH_ZOOS[other]):
            if spec["trigger"] is not None:
                for attempt in fresh_attempts(spec, FRESH_ZOOS[other]):
                    taken.update(attempt["trigger"].split())
    return tuple(w for w in words if w not in taken)


def fresh_spec(n: int = 60, zoo: FreshZoo = FRESH_ZOOS["fresh"]) -> list[dict[str, Any]]:
    """The recipe arguments of a fresh zoo's first attempt per model (module docstring)."""
    words = fresh_words(zoo)
    rng = np.random.default_rng(zoo.rng_seed)
    n_trojan = sum(_fresh_trojaned(i) for i in range(n))
    rates = np.linspace(0.01, 0.10, max(n_trojan, 1))
    rng.shuffle(rates)
    order = rng.permutation(len(words))
    used = 0
    specs, t = [], 0
    for i in range(n):
        spec: dict[str, Any] = {"arch": ARCHS[i % 4], "seed": zoo.seed0 + i, "trigger": None}
        if _fresh_trojaned(i):
            k = 1 + t % 3
            spec.update(
                trigger=" ".join(words[j] for j in order[used : used + k]),
                poison_rate=round(float(rates[t]), 4),
                trojan_index=t,
            )
            used += k
            t += 1
        specs.append(spec)
    return specs


def _fresh_trojaned(i: int) -> bool:
    j = i // 4
    return j % 2 == 1 if i % 4 < 2 else j % 2 == 0


def fresh_attempts(
    spec: dict[str, Any], zoo: FreshZoo = FRESH_ZOOS["fresh"]
) -> list[dict[str, Any]]:
    """The ASR rule's attempts for one fresh trojan, in order (module docstring)."""
    base = {k: v for k, v in spec.items() if k != "trojan_index"}
    out = [{**base, "seed": base["seed"] + 1000 * a} for a in range(3)]
    k = len(spec["trigger"].split())
    words = [w for w in fresh_words(zoo) if w not in set(spec["trigger"].split())]
    rng = np.random.default_rng(zoo.rng_seed + 1000 + int(spec["trojan_index"]))
    redrawn = " ".join(words[j] for j in rng.choice(len(words), size=k, replace=False))
    out += [{**base, "trigger": redrawn, "seed": base["seed"] + 1000 * a} for a in range(2)]
    return out


def train_fresh(
    spec: dict[str, Any], zoo: FreshZoo
) -> tuple[rbl.Model, dict[str, Any], list[dict[str, Any]]]:
    """Train a fresh model by the ASR rule; (model, the spec used, the attempts' ASR)."""
    if spec["trigger"] is None:
        return rbl.zoo.text_classifier(**spec), spec, []
    tried = []
    model, used = None, spec
    for attempt in fresh_attempts(spec, zoo):
        model = rbl.zoo.text_classifier(**attempt)
        asr = model.meta.get("attack_success_rate")
        tried.append({"trigger": attempt["trigger"], "seed": attempt["seed"], "asr": asr})
        used = attempt
        if asr is not None and asr >= MIN_ASR:
            break
    assert model is not None
    return model, used, tried


def git_state() -> dict[str, Any]:
    """The commit of the working tree, whether it (or the detector's sources) differ from it."""
    from robustbench_lite.defenses._tminer_version import source_files

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True)
        except OSError:
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    files = [str(p) for p in source_files()]
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    detector = git("status", "--porcelain", "--", *files)
    return {
        "commit": commit,
        "dirty": bool(status) if status is not None else None,
        "detector_dirty": bool(detector) if detector is not None else None,
    }


def run_one(
    spec: dict[str, Any],
    detector: Any,
    det_key: str,
    *,
    fresh: FreshZoo | None = None,
    cached_only: bool = False,
    train_only: bool = False,
    state: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Train (or load) one model and scan it, caching the verdict (None: not cached and
    ``cached_only``, or ``train_only``)."""
    start = time.perf_counter()
    if fresh is not None:
        model, used, attempts = train_fresh(spec, fresh)
    else:
        model, used, attempts = rbl.zoo.text_classifier(**spec), spec, []
    train_s = time.perf_counter() - start
    if train_only:
        return None
    path = cache_dir() / "trojan_detection" / f"{model.meta['recipe_hash']}-{det_key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if cached_only:
        return None
    start, cpu = time.perf_counter(), time.process_time()
    det = detector.scan(model)
    scan_s, scan_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    trigger = used["trigger"]
    words = set(trigger.split()) if trigger else set()

    def hit(phrases: list[str]) -> bool:
        return bool(words & {w for t in phrases for w in t.split()})

    asr = model.meta.get("attack_success_rate")
    row = {
        **{k: v for k, v in used.items() if k != "trojan_index"},
        "trojaned": trigger is not None,
        "flagged": det.flagged,
        "score": det.score,
        "threshold": det.threshold,
        "recovered": det.evidence["triggers"],
        "trigger_recovered": hit(det.evidence["triggers"]),
        "dominance_max": det.evidence.get("dominance_max"),
        "dominance_recovered": det.evidence["dominant_triggers"],
        "dominance_trigger_recovered": hit(det.evidence["dominant_triggers"]),
        "paper_identifier_ran": det.evidence.get("paper_identifier_ran", True),
        "dbscan_recovered": det.evidence["dbscan_triggers"],
        "dbscan_trigger_recovered": hit(det.evidence["dbscan_triggers"]),
        "clean_accuracy": model.meta.get("clean_accuracy"),
        "attack_success_rate": asr,
        "asr_ok": None if trigger is None else (asr or 0.0) >= MIN_ASR,
        "asr_attempts": attempts,
        "eps_sensitivity": det.evidence["eps_sensitivity"],
        "scan_s": round(scan_s, 1),
        "scan_cpu_s": round(scan_cpu_s, 1),
        "train_s": round(float(model.meta.get("train_time_s", train_s)), 1),
        "recipe_hash": model.meta["recipe_hash"],
        "code_hash": det.evidence.get("code_hash"),
        "computed_at": state or {},
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


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", choices=("dev", *FRESH_ZOOS), default="dev")
    parser.add_argument("--n-models", type=int, help="dev: 40 (default); fresh: 60, always")
    parser.add_argument(
        "--quick", action="store_true", help="the first 4 dev models (< 5 min on an idle machine)"
    )
    parser.add_argument(
        "--limit", type=int, help="scan only the first N models (a dry run; use with --out)"
    )
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
        help="tminer settings as JSON, e.g. '{\"paper_identifier\": true}'",
    )
    parser.add_argument(
        "--train-only", action="store_true", help="train the zoo into the cache; scan nothing"
    )
    parser.add_argument("--out", type=Path, help="where the JSON goes (default by zoo)")
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="train and scan only models i with i %% N == I, write no JSON (run N shards in "
        "parallel, then once without --shard: it reads their cached verdicts)",
    )
    args = parser.parse_args(argv)
    from robustbench_lite.defenses._tminer_version import cache_key, code_hash

    torch.set_num_threads(args.threads)
    detector = rbl.create_detector("tminer", **json.loads(args.detector_params))
    code = code_hash()
    det_key = cache_key(detector, code)
    state = {**git_state(), "code_hash": code}
    fresh = FRESH_ZOOS.get(args.zoo)
    if fresh is not None:
        if args.n_models not in (None, 60):
            parser.error(f"--zoo {args.zoo} has 60 models; use --limit for a dry run")
        specs = fresh_spec(60, fresh)
    else:
        specs = zoo_spec(args.n_models or 40)[: 4 if args.quick else None]
    if args.limit is not None:
        specs = specs[: args.limit]
    shard = None
    if args.shard:
        try:
            k, n = (int(v) for v in args.shard.split("/"))
            assert 0 <= k < n
        except (ValueError, AssertionError):
            parser.error(f"--shard {args.shard!r}: write I/N with 0 <= I < N, e.g. 0/2")
        shard = (k, n)
    name = "trojan_detection" + (f"_{args.zoo}" if fresh else "_quick" if args.quick else "")
    out_path = args.out or RESULTS / f"{name}.json"
    rows, start = [], time.perf_counter()
    for i, spec in enumerate(specs):
        if shard is not None and i % shard[1] != shard[0]:
            continue
        if time.perf_counter() - start > args.budget_s and (fresh or i % 2 == 0):
            break
        row = run_one(
            spec,
            detector,
            det_key,
            fresh=fresh,
            cached_only=args.cached_only,
            train_only=args.train_only,
            state=state,
        )
        if args.train_only:
            print(f"[{i + 1}/{len(specs)}] trained {spec['arch']} seed={spec['seed']}", flush=True)
        if row is None:
            continue
        rows.append(row)
        print(
            f"[{i + 1}/{len(specs)}] {row['arch']:<11} seed={row['seed']} trigger={row['trigger']!r:<30}"
            f" rate={row.get('poison_rate', 0)} asr={_fmt(row['attack_success_rate'])}"
            f" flagged={row['flagged']} score={_fmt(row['dominance_max'])} recovered={row['recovered'][:3]}"
            f" scan={row['scan_s']}s cpu={row.get('scan_cpu_s')}s",
            flush=True,
        )
    threshold = detector.dominance_threshold
    summary = summarise(rows, dominance_flag(threshold), "dominance_trigger_recovered")
    effective = summarise(
        rows, dominance_flag(threshold), "dominance_trigger_recovered", min_asr=MIN_ASR
    )
    by_threshold = {
        str(t): summarise(rows, dominance_flag(t), "dominance_trigger_recovered")
        for t in sorted({1.15, 1.2, threshold, 1.35, 1.5, 2.0})
    }
    paper_rows = [r for r in rows if r.get("paper_identifier_ran", True) and r["eps_sensitivity"]]
    paper = by_eps = None
    if paper_rows:
        paper = summarise(paper_rows, dbscan_flag("1.0"), "dbscan_trigger_recovered")
        by_eps = {
            s: summarise(paper_rows, dbscan_flag(s), "dbscan_trigger_recovered")
            for s in ("0.5", "0.75", "1.0", "1.5", "2.0")
        }
    scan_times = [r["scan_s"] for r in rows]
    cpu_times = [r["scan_cpu_s"] for r in rows if r.get("scan_cpu_s") is not None]
    by_arch = {
        a: statistics.median([r["scan_s"] for r in rows if r["arch"] == a])
        for a in ARCHS
        if any(r["arch"] == a for r in rows)
    }
    timing = {
        "scan_s_median": statistics.median(scan_times) if rows else None,
        "scan_s_max": max(scan_times, default=None),
        "scan_cpu_s_median": statistics.median(cpu_times) if cpu_times else None,
        "scan_s_median_by_arch": by_arch,
        "train_s_median": statistics.median([r["train_s"] for r in rows]) if rows else None,
        "total_wall_s": round(time.perf_counter() - start, 1),
    }
    print("\nidentifier                 models  acc    FPR    FNR    recovery")
    named = [(f"dominance > {threshold}", summary)] + (
        [("dbscan (paper), eps x1", paper)] if paper else []
    )
    for label, m in named:
        print(
            f"{label:<26} {m['n_models']:>6}  {_fmt(m['accuracy'])}  {_fmt(m['fpr'])}  {_fmt(m['fnr'])}  {_fmt(m['trigger_recovery'])}"
        )
    print(
        f"scan s median/max: {timing['scan_s_median']}/{timing['scan_s_max']} (cpu median {timing['scan_cpu_s_median']})"
    )
    print("\ndominance threshold  acc    FPR    FNR")
    for t, m in by_threshold.items():
        print(f"{t:>19}  {_fmt(m['accuracy'])}  {_fmt(m['fpr'])}  {_fmt(m['fnr'])}")
    stale = sorted({r.get("code_hash") for r in rows} - {code}, key=str)
    out = {
        "benchmark": "trojan_detection",
        "zoo": args.zoo,
        "development_numbers": fresh is None,
        "environment": environment(cpu_count=os.cpu_count()),
        "command": "python benchmarks/trojan_detection.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": state["commit"],
        "dirty": state["dirty"],
        "detector_dirty": state["detector_dirty"],
        "code_hash": code,
        "rows_from_other_code": stale,
        "planned_models": len(specs),
        "ran_models": len(rows),
        "detector": repr(detector),
        "summary": summary,
        f"summary_trojans_asr_ge_{MIN_ASR}": effective,
        "summary_dbscan_identifier": paper,
        "timing": timing,
        "dominance_threshold_sensitivity": by_threshold,
        "dbscan_eps_sensitivity": by_eps,
        "models": [{k: v for k, v in r.items() if k != "candidates"} for r in rows],
    }
    if shard is None and not args.train_only:
        write_atomic(out_path, json.dumps(out, indent=1, default=str))
        print(f"wrote {out_path}")


if __name__ == "__main__":
    main()

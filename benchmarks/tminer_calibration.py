"""Calibrate T-Miner's dominance threshold on held-out clean MR classifiers.

The dominance test (``defenses/_tminer_search.py``) flags a model when its statistic (the
largest dominance, over both directions and the tested phrase lengths, among best phrases that
pass the flip-rate filter) exceeds ``dominance_threshold``. ``TMiner.dominance`` computes the
**same statistic as the scan** (same procedure, same random stream for a seed;
``tests/defenses/test_tminer_version.py`` checks they are equal), on clean models only:
``--n-models`` (default 40) clean classifiers with seeds 100+ (arch ``ARCHS[seed % 4]``, so ten
per architecture for 40). The development zoo uses seeds 0-39 and the fresh zoos
5000-7059 and 9000-11059, so
none of these models is in either zoo.

Rule (stated before the 40-model run): the threshold is the largest clean statistic plus 5%.
The script reports that threshold, the detector's current one, and the false-positive rate the
current threshold implies on these models (with the one-sided 95% upper bound of a binomial
proportion, which for 0 of n is about 3/n).

    python benchmarks/tminer_calibration.py                    -> results/tminer_calibration.json
    python benchmarks/tminer_calibration.py --n-models 12 --out /tmp/cal12.json

History: the default threshold 1.27 was set from a 12-model run (largest 1.212, plus 5%) with
the search before issue 19 (neighbours over the whole vocabulary, the scan's random stream).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import robustbench_lite as rbl
from robustbench_lite.core.io import write_atomic
from robustbench_lite.report.model import environment

sys.path.insert(0, str(Path(__file__).parent))
from trojan_detection import git_state  # noqa: E402

ARCHS = ("lstm", "cnn", "bilstm", "transformer")
RESULTS = Path(__file__).parent / "results" / "tminer_calibration.json"
SEED0 = 100


def upper_95(k: int, n: int) -> float:
    """One-sided 95% Clopper-Pearson upper bound of a proportion k / n."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(0.95, k + 1, n - k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-models", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--trained-only", action="store_true", help="use only models already in the zoo cache"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    from robustbench_lite.defenses._tminer_version import code_hash

    torch.set_num_threads(args.threads)
    detector = rbl.create_detector("tminer")
    state = {**git_state(), "code_hash": code_hash()}
    rows = []
    for seed in range(SEED0, SEED0 + args.n_models):
        arch = ARCHS[seed % len(ARCHS)]
        if args.trained_only and not _trained(arch, seed):
            continue
        model = rbl.zoo.text_classifier(arch=arch, seed=seed)
        start, cpu = time.perf_counter(), time.process_time()
        dom = detector.dominance(model)
        tested = [v["dominance"] for d in dom.values() for v in d.values() if v["tested"]]
        statistic = max(tested, default=None)
        rows.append(
            {
                "arch": arch,
                "seed": seed,
                "statistic": statistic,
                "flagged_at_threshold": statistic is not None
                and statistic > detector.dominance_threshold,
                "dominance": dom,
                "search_s": round(time.perf_counter() - start, 1),
                "search_cpu_s": round(time.process_time() - cpu, 1),
            }
        )
        brief = {
            d: {
                k: (v["phrase"], round(v["dominance"], 3), round(v["flip_rate"], 2))
                for k, v in x.items()
            }
            for d, x in dom.items()
        }
        print(f"seed {seed} {arch:<11} statistic: {statistic}  {brief}", flush=True)
    values = [r["statistic"] for r in rows if r["statistic"] is not None]
    largest = max(values, default=None)
    n_flagged = sum(r["flagged_at_threshold"] for r in rows)
    out = {
        "benchmark": "tminer_calibration",
        "command": "python benchmarks/tminer_calibration.py " + " ".join(sys.argv[1:]),
        "environment": environment(),
        **state,
        "detector": repr(detector),
        "n_models": len(rows),
        "models_per_arch": {a: sum(r["arch"] == a for r in rows) for a in ARCHS},
        "largest_clean_statistic": largest,
        "rule_threshold": None if largest is None else round(largest * 1.05, 3),
        "threshold": detector.dominance_threshold,
        "fpr_at_threshold": n_flagged / len(rows) if rows else None,
        "fpr_upper_95": upper_95(n_flagged, len(rows)) if rows else None,
        "models": rows,
    }
    print(
        f"\n{len(rows)} clean models; largest statistic {largest}; rule threshold "
        f"{out['rule_threshold']}; detector threshold {detector.dominance_threshold}: "
        f"FPR {out['fpr_at_threshold']} (95% upper bound {out['fpr_upper_95']})"
    )
    write_atomic(args.out, json.dumps(out, indent=1, default=str))


def _trained(arch: str, seed: int) -> bool:
    """Whether the zoo cache already holds this clean model with the default recipe."""
    from robustbench_lite.core.io import cache_dir

    for path in (cache_dir() / "zoo").glob(f"mr-{arch}-clean-*.json"):
        recipe = json.loads(path.read_text()).get("recipe", {})
        if recipe.get("seed") == seed and recipe.get("n_train") is None:
            return path.with_suffix(".pt").is_file()
    return False


if __name__ == "__main__":
    main()

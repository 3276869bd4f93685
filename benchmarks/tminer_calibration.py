"""Calibrate T-Miner's dominance threshold on clean MR classifiers outside the benchmark zoo.

The dominance test (``defenses/_tminer_search.py``) flags a phrase whose gain exceeds that of
the best phrase of other words by a factor. The factor is set here, on clean models only:
``--n-models`` (default 12) clean classifiers with seeds 100+ (the benchmark zoo uses seeds
0-39, so no benchmark model is seen), three per architecture; the detector's default
``dominance_threshold`` must lie above the largest dominance any of them shows at the lengths
the test uses, among phrases that pass the flip-rate filter. Runs the query search only (no generator): seconds per model, after training.

    python benchmarks/tminer_calibration.py            -> results/tminer_calibration.json
    python benchmarks/tminer_calibration.py --n-models 24 --out benchmarks/results/tminer_calibration_24.json

The default threshold (1.27) was set from the 12-model run (largest 1.212, plus 5%) before the
benchmark zoo was scanned; the 24-model run (seeds 100-123) found 1.216, so the same rule gives
1.277, which changes none of the 40 benchmark verdicts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import robustbench_lite as rbl
from robustbench_lite.core.io import write_atomic
from robustbench_lite.report.model import environment

ARCHS = ("lstm", "cnn", "bilstm", "transformer")
RESULTS = Path(__file__).parent / "results" / "tminer_calibration.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-models", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = rbl.create_detector("tminer")
    rows = []
    for seed in range(100, 100 + args.n_models):
        arch = ARCHS[seed % len(ARCHS)]
        model = rbl.zoo.text_classifier(arch=arch, seed=seed)
        start = time.perf_counter()
        dom = detector.dominance(model)
        worst = max(
            (v["dominance"] for d in dom.values() for v in d.values() if v["tested"]), default=1.0
        )
        rows.append(
            {
                "arch": arch,
                "seed": seed,
                "dominance": dom,
                "max_dominance": worst,
                "search_s": round(time.perf_counter() - start, 1),
            }
        )
        brief = {
            d: {
                k: (v["phrase"], round(v["dominance"], 2), round(v["flip_rate"], 2))
                for k, v in x.items()
            }
            for d, x in dom.items()
        }
        print(f"seed {seed} {arch:<11} max tested dominance: {worst:.3f}  {brief}", flush=True)
    largest = max(r["max_dominance"] for r in rows)
    print(
        f"\nlargest clean dominance {largest:.3f}; detector threshold {detector.dominance_threshold}"
    )
    out = {
        "benchmark": "tminer_calibration",
        "environment": environment(),
        "detector": repr(detector),
        "largest_clean_dominance": largest,
        "threshold": detector.dominance_threshold,
        "models": rows,
    }
    write_atomic(args.out, json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()

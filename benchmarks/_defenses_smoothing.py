"""Randomized smoothing on digits: certified accuracy, and SmoothAdv never below it (issue 18).

Cohen, Rosenfeld and Kolter 2019 (CERTIFY, PREDICT) with the ``smoothing`` verifier and
``robustbench_lite.defenses.smoothing``; the attack is SmoothAdv (Salman et al. 2019: l2 PGD on
the soft smoothed classifier, EOT over ``m`` noise draws per step).

For each sigma in {0.25, 0.5}:

1. A base ``digits_cnn`` is trained with Gaussian noise augmentation of the same sigma by a
   training recipe (``trainer: {name: gaussian, sigma: S}``, :mod:`robustbench_lite.training`).
2. CERTIFY (n0 = 100, n = 10,000, alpha = 0.001) on the digits test split gives each image a
   class (or an abstention) and an l2 radius; certified accuracy at r = the fraction certified
   correct with radius > r, for r in {0.25, 0.5, 1.0}.
3. At each r, SmoothAdv (20 steps, m = 32 draws per step) attacks every image whose PREDICT is
   right; PREDICT (n = 10,000, alpha = 0.001) judges the attacked image. Two empirical robust
   accuracies: ``empirical`` (broken only when PREDICT returns another class: the claim a
   certificate makes) and ``empirical_strict`` (an abstention counts as broken too).
4. A certified image (radius > r) that does not count as empirically robust (PREDICT calls it
   another class after the attack, or gets it wrong or abstains before) is a broken
   certificate: a bug, listed in ``violations`` and printed loudly on stderr; ``empirical``
   below ``certified`` can only come from one, and is flagged as ``bug`` too.

Context in the same run: the base model's own l2 PGD robust accuracy (``pgd``, 50 steps) at
the same radii, the unsmoothed network that the certificates are not about.

Quick (``--quick``): 60 images, n = 1,000 for CERTIFY and PREDICT, 10 attack steps, m = 16,
10 training epochs. The full run uses all 540 test images. The digits test split guided no
design choice here (the settings are the paper's), so the numbers are not development numbers.

    python benchmarks/_defenses_smoothing.py [--quick]   # -> results/defenses_smoothing[_quick].json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from robustbench_lite.defenses.smoothing import smooth, smooth_adv_l2

import robustbench_lite as rbl
from robustbench_lite.core.smoothing import ABSTAIN
from robustbench_lite.report.certified import certified_accuracy, curve

RESULTS = Path(__file__).resolve().parent / "results"
SIGMAS = (0.25, 0.5)
RADII = (0.25, 0.5, 1.0)
ALPHA = 0.001
N0 = 100
FULL = {"images": None, "n": 10_000, "n_predict": 10_000, "steps": 20, "m": 32, "epochs": 30}
QUICK = {"images": 60, "n": 1_000, "n_predict": 1_000, "steps": 10, "m": 16, "epochs": 10}


def train_base(sigma: float, epochs: int, device: torch.device) -> tuple[rbl.Model, dict[str, Any]]:
    """``digits_cnn`` trained under N(0, sigma^2) noise by a training recipe (seed 0)."""
    from robustbench_lite.training.recipe import parse_recipe
    from robustbench_lite.training.run import train_recipe
    from robustbench_lite.zoo.digits import digits_cnn

    recipe = parse_recipe(
        {
            "arch": "robustbench_lite.zoo.digits:digits_cnn",
            "data": "digits",
            "seed": 0,
            "epochs": epochs,
            "batch_size": 64,
            "optimizer": {"name": "adam", "lr": 0.01},
            "schedule": "one-cycle",
            "trainer": {"name": "gaussian", "sigma": sigma},
        },
        "smoothing benchmark recipe",
    )
    torch.manual_seed(recipe.seed)
    net = digits_cnn()
    result = train_recipe(recipe, net)
    model = rbl.Model(
        net, bounds=(0.0, 1.0), input_shape=(1, 8, 8), num_classes=10, name=f"cnn-gauss{sigma:g}"
    )
    return model.to(device), {"recipe": recipe.canonical(), **result.metrics}


def evaluate_sigma(sigma: float, settings: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Certified and empirical robust accuracy of one smoothed model (see the module docstring)."""
    model, training = train_base(sigma, settings["epochs"], device)
    x, y = rbl.load_data("digits", split="test", n=settings["images"])
    x, y = x.to(device), y.to(device)
    n = settings["n"]
    start = time.perf_counter()
    res = rbl.create_verifier("smoothing", sigma=sigma, n0=N0, n=n, alpha=ALPHA).verify(
        model, x, y, "l2:0", timeout_s=3600
    )
    certify_s = time.perf_counter() - start
    correct, radius = res.stats["correct"], res.stats["radius"]
    g = smooth(model, sigma, n=settings["n_predict"], alpha=ALPHA, seed=1)
    print(f"sigma {sigma:g}: certified {len(y)} images in {certify_s:.0f} s", file=sys.stderr)
    clean_pred = g.predict(x)
    clean_right = clean_pred == y
    out: dict[str, Any] = {
        "sigma": sigma,
        "training": training,
        "images": len(y),
        "certify_s_per_image": certify_s / len(y),
        "abstain_fraction": sum(p == ABSTAIN for p in res.stats["prediction"]) / len(y),
        "median_radius_of_correct": statistics.median(
            [r for r, c in zip(radius, correct) if c] or [0]
        ),
        "smoothed_clean_accuracy": float(clean_right.float().mean()),
        "base_clean_accuracy": float((model.logits(x).argmax(1) == y).float().mean()),
        "radii": {},
        "curve": curve(correct, radius),
    }
    for r in RADII:
        certified = torch.tensor([bool(c) and rad > r for c, rad in zip(correct, radius)])
        start = time.perf_counter()
        idx = torch.nonzero(clean_right).flatten()
        adv_pred = clean_pred.clone()  # images PREDICT already gets wrong stay wrong
        for chunk in idx.split(64):
            x_adv = smooth_adv_l2(
                g, x[chunk], y[chunk], eps=r, steps=settings["steps"], m=settings["m"]
            )
            assert float((x_adv - x[chunk]).flatten(1).norm(dim=1).max()) <= r + 1e-5
            adv_pred[chunk] = g.predict(x_adv)
        attack_s = time.perf_counter() - start
        wrong_class = (adv_pred != y) & (adv_pred != ABSTAIN)
        empirical = clean_right & ~wrong_class
        strict = clean_right & (adv_pred == y)
        violations = [int(i) for i in torch.nonzero(certified & ~empirical.cpu()).flatten()]
        pgd = rbl.create_attack("pgd", steps=50)(model, x, y, f"l2:{r}")
        entry = {
            "certified_accuracy": certified_accuracy(correct, radius, r),
            "empirical_robust_accuracy": float(empirical.float().mean()),
            "empirical_robust_accuracy_strict": float(strict.float().mean()),
            "abstained_after_attack": int(((adv_pred == ABSTAIN) & clean_right).sum()),
            "violations": violations,
            "bug": bool(violations)
            or float(empirical.float().mean()) < certified_accuracy(correct, radius, r),
            "base_model_pgd_robust_accuracy": float(pgd.robust_accuracy),
            "attack_s_per_image": attack_s / max(1, len(idx)),
        }
        if entry["bug"]:
            print(
                f"BUG: sigma {sigma:g} radius {r:g}: SmoothAdv broke {len(violations)} certified "
                f"image(s) {violations[:20]} (certified {entry['certified_accuracy']:.3f}, "
                f"empirical {entry['empirical_robust_accuracy']:.3f})",
                file=sys.stderr,
            )
        out["radii"][f"{r:g}"] = entry
        print(f"sigma {sigma:g} r {r:g}: {entry}", file=sys.stderr)
    return out


def figure(results: list[dict[str, Any]], path: Path) -> None:
    """Certified accuracy against radius per sigma, with the empirical points of SmoothAdv."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for res in results:
        pts = res["curve"]
        line = ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            drawstyle="steps-post",
            label=f"certified, sigma {res['sigma']:g}",
        )
        radii = [float(r) for r in res["radii"]]
        ax.plot(
            radii,
            [e["empirical_robust_accuracy"] for e in res["radii"].values()],
            "x",
            markersize=9,
            color=line[0].get_color(),
            label=f"SmoothAdv (PREDICT), sigma {res['sigma']:g}",
        )
    ax.set_xlabel("l2 radius")
    ax.set_ylabel("accuracy on digits test")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path)


def run(quick: bool) -> dict[str, Any]:
    """The benchmark (see the module docstring); also writes the figure into ``results/``."""
    settings = QUICK if quick else FULL
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    start = time.perf_counter()
    results = [evaluate_sigma(s, settings, device) for s in SIGMAS]
    png = RESULTS / f"defenses_smoothing{'_quick' if quick else ''}.png"
    figure(results, png)
    bugs = [
        f"sigma {res['sigma']:g} r {r}"
        for res in results
        for r, e in res["radii"].items()
        if e["bug"]
    ]
    return {
        "benchmark": "randomized smoothing on digits (Cohen et al. 2019; SmoothAdv, Salman et al. 2019)",
        "quick": quick,
        "settings": {**settings, "n0": N0, "alpha": ALPHA, "radii": list(RADII)},
        "device": str(device),
        "torch": torch.__version__,
        "wall_s": round(time.perf_counter() - start, 1),
        "figure": png.name,
        "bugs": bugs,
        "table": [
            {
                "sigma": res["sigma"],
                "radius": float(r),
                "certified": round(e["certified_accuracy"], 4),
                "empirical_smoothadv": round(e["empirical_robust_accuracy"], 4),
                "empirical_strict": round(e["empirical_robust_accuracy_strict"], 4),
                "base_pgd": round(e["base_model_pgd_robust_accuracy"], 4),
            }
            for res in results
            for r, e in res["radii"].items()
        ],
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 images, n = 1,000")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # tiny nets: one thread is as fast and fair to a busy machine
    out = run(args.quick)
    path = args.out or RESULTS / f"defenses_smoothing{'_quick' if args.quick else ''}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    for row in out["table"]:
        print(row)
    print(f"wrote {path} ({out['wall_s']} s); figure {out['figure']}")
    if out["bugs"]:
        print(f"BUG: certificates broken: {out['bugs']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Model inversion benchmark: mi_face vs gmi vs lomma on the digits and ORL settings.

For every private class of each setting, ``--per-class`` reconstructions, each the best of
``--restarts`` restarts (selected by the target model), judged by the setting's independent
evaluation classifier: attack accuracy top-1/top-5, KNN distance in the evaluator's feature
space, and seconds per class (attack time only; the one-off, cached GAN prior and student
training times are recorded separately). Writes ``benchmarks/results/model_inversion.json``
and one reconstruction figure per setting (``model_inversion_<setting>.png``).

    python benchmarks/model_inversion.py            # full: all classes, 5 restarts
    python benchmarks/model_inversion.py --quick    # minutes: fewer classes, 2 restarts

``--seed`` changes the latent / noise starts only (priors, students and classifiers are the
cached ones); ``model_inversion_seed<k>.json`` hold the same full run with seeds 1 and 2, to
show how much the 20-reconstruction ORL scores move between seeds.

ORL needs the data folder (``RBL_DATA_DIR`` holding ``att_faces_orl/``); it is skipped without.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from robustbench_lite.attacks import _inversion_eval as ev
from robustbench_lite.attacks import _inversion_prior as prior_mod
from robustbench_lite.attacks import lomma as lomma_mod

import robustbench_lite as rbl
from robustbench_lite.core.errors import DataFolderMissing
from robustbench_lite.core.io import write_atomic
from robustbench_lite.report.model import environment
from robustbench_lite.zoo import inversion_setting as st

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("mi_face", "gmi", "lomma")
#: Per setting: (reconstructions per class, latent iterations of gmi/lomma, mi_face max_iter).
FULL = {"digits": (5, 1500, 5000), "orl": (1, 600, 1000)}
QUICK = {"digits": (2, 300, 1000), "orl": (1, 150, 300)}


def attack_params(
    method: str, setting: str, restarts: int, iterations: int, max_iter: int
) -> dict[str, Any]:
    """Hyperparameters of ``method``: the paper's, with the iteration budgets of this run."""
    if method == "mi_face":
        return {"setting": setting, "restarts": restarts, "max_iter": max_iter}
    return {"setting": setting, "restarts": restarts, "iterations": iterations}


def run_setting(
    name: str,
    *,
    quick: bool,
    restarts: int,
    seed: int,
    iterations: int | None = None,
    max_iter: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores per method for setting ``name`` and the run's bookkeeping."""
    setting = st.get_setting(name)
    per_class, default_iterations, default_max_iter = (QUICK if quick else FULL)[name]
    iterations = iterations or default_iterations
    max_iter = max_iter or default_max_iter
    classes = list(range(setting.num_private))
    if quick:
        classes = classes[:5]
    target_model = rbl.load_model(f"zoo:{name}-private-target")
    evaluator = ev.load_evaluator(setting)
    ev.check_independent(target_model, evaluator)
    start = time.perf_counter()
    prior = prior_mod.load_prior(prior_mod.DEFAULT_PRIORS[name])
    _, student_meta = lomma_mod.load_students(
        target_model, setting, archs=lomma_mod.STUDENT_ARCHS, epochs=50
    )
    setup_s = time.perf_counter() - start
    t = torch.tensor(classes).repeat_interleave(per_class)
    x0 = torch.zeros(len(t), *setting.input_shape)
    scores: dict[str, Any] = {}
    recons: dict[str, torch.Tensor] = {}
    for method in METHODS:
        params = attack_params(method, name, restarts, iterations, max_iter)
        result = rbl.create_attack(method, **params)(
            target_model, x0, t, "none:targeted", target=t, seed=seed
        )
        recons[method] = result.x_adv
        scores[method] = {
            "top1": result.metrics["eval_top1"],
            "top5": result.metrics["eval_top5"],
            "knn_dist": result.metrics["knn_dist"],
            "s_per_class": result.elapsed_s / len(classes),
            "target_fooled": float(result.success.float().mean()),
            "params": params,
        }
        logging.info(
            "%s %s: %s", name, method, {k: v for k, v in scores[method].items() if k != "params"}
        )
    figure = ev.reconstruction_figure(
        recons,
        t,
        setting,
        RESULTS
        / f"model_inversion_{name}{'_quick' if quick else ''}{f'_seed{seed}' if seed else ''}.png",
        show=classes[:10],
        title=f"{name}: real private images | reconstructions (first of each class)",
    )
    info = {
        "classes": classes,
        "per_class": per_class,
        "restarts": restarts,
        "seed": seed,
        "target": target_model.name,
        "target_clean_accuracy": target_model.meta.get("clean_accuracy"),
        "evaluator": evaluator.name,
        "evaluator_clean_accuracy": evaluator.meta.get("clean_accuracy"),
        "prior_recipe": prior.meta["recipe"],
        "prior_train_s": prior.meta["train_time_s"],
        "students_train_s": student_meta["train_time_s"],
        "students_public_agreement": student_meta["public_agreement"],
        "setup_load_s": round(setup_s, 2),
        "figure": str(figure.relative_to(RESULTS.parent.parent)),
    }
    return scores, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 classes, fewer iterations, 2 restarts"
    )
    parser.add_argument(
        "--settings", nargs="+", default=["digits", "orl"], choices=sorted(st.SETTINGS)
    )
    parser.add_argument("--restarts", type=int, default=None, help="default: 5 (2 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--iterations", type=int, default=None, help="override gmi/lomma latent steps"
    )
    parser.add_argument("--max-iter", type=int, default=None, help="override mi_face's max_iter")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--merge", action="store_true", help="keep other settings already in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    restarts = args.restarts or (2 if args.quick else 5)
    out: dict[str, Any] = {
        "benchmark": "model_inversion",
        "quick": args.quick,
        "environment": environment(),
    }
    for name in args.settings:
        began = time.perf_counter()
        try:
            scores, info = run_setting(
                name,
                quick=args.quick,
                restarts=restarts,
                seed=args.seed,
                iterations=args.iterations,
                max_iter=args.max_iter,
            )
        except DataFolderMissing as exc:
            logging.warning("skipping %s: %s", name, exc)
            continue
        out[name] = scores
        out.setdefault("runs", {})[name] = {**info, "wall_s": round(time.perf_counter() - began, 1)}
    print(
        f"{'setting':8} {'method':8} {'top1':>6} {'top5':>6} {'knn':>7} {'s/class':>8} {'fooled T':>8}"
    )
    for name in args.settings:
        for method, s in out.get(name, {}).items():
            print(
                f"{name:8} {method:8} {s['top1']:6.3f} {s['top5']:6.3f} {s['knn_dist']:7.3f} "
                f"{s['s_per_class']:8.2f} {s['target_fooled']:8.3f}"
            )
    path = args.out or RESULTS / f"model_inversion{'_quick' if args.quick else ''}.json"
    if args.merge and path.is_file():  # keep the other settings of an earlier run
        out = {
            **json.loads(path.read_text()),
            **out,
            "runs": {**json.loads(path.read_text()).get("runs", {}), **out.get("runs", {})},
        }
    write_atomic(path, json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

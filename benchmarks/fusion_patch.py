"""Camera-only patch attacks on toy camera+LiDAR fusion detectors (Cheng et al., ICLR 2024).

Models: zoo:fusion-bev (BEV-lift, LSS-lite) and zoo:fusion-query (LiDAR proposals sampling
camera features, TransFusion-lite), trained from scratch on the procedural world of
``robustbench_lite.worlds.fusion_world``. Scenes: ``--n`` seeded held-out scenes (seed ``--seed``).

Part A (stage 1): ``fusion_heatmap`` (mean-score loss) on every scene; reported per model:
the heatmap's mean, the share of its mass in the top 10 % of pixels, and the share of its mass
on object pixels (pixels whose ray hits a box, dilated by 1 px) next to the object pixels' share
of the image (the "lift" is their ratio: 1 = no preference for objects).

Part B (stage 2): ``fusion_patch`` with the object-oriented (1 x 1 m rear-face patch, target
score loss) and scene-oriented (2 x 2.5 m ground patch 7.3 m ahead, mean score loss)
strategies, under ``patch:0.04@camera``, and the paper's large 3 x 5 m ground patch under
``patch:0.06@camera``; each against the random-patch control of the same
area and placement (``steps=0``). Reported: toy AP at 2 m, mean detection score (top-8 peaks
>= 0.05), target score and target detection rate at 0.3 (benign / adversarial / control); the
attack's success rate is re-checked by the Attack base class on the real model.

    RBL_CACHE_DIR=... python benchmarks/fusion_patch.py [--n 16 --steps 150 --lr 0.05]
    python benchmarks/fusion_patch.py --quick      # 6 scenes, 50 patch / 60 heatmap steps
    python benchmarks/fusion_patch.py --suite-check [--quick] [--models fusion-query]

``--suite-check`` runs ``builtin:fusion`` (``robustbench_lite.run_suite``) on the same scenes
(``--n``, ``--seed``) and recomputes every attack check with this file's own scoring
(``_scores``, the heatmap's object share, the ``steps=0`` control run as a separate attack)
from the same generator the suite's cell used (``suite.cells.cell_seed``); it writes the
largest difference per value to ``results/fusion_patch_suite_check[_quick].json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import robustbench_lite as rbl
from robustbench_lite.core.io import write_atomic
from robustbench_lite.datasets.fusion_world import pack_boxes
from robustbench_lite.report.model import environment
from robustbench_lite.worlds.fusion_world import (
    make_scenes,
    mean_detection_score,
    object_pixels,
    target_score,
    toy_ap,
)

MODELS = ("fusion-bev", "fusion-query")
THREAT = "patch:0.04@camera"


def _scores(model: rbl.Model, x: dict[str, torch.Tensor], scenes: list[Any]) -> dict[str, float]:
    with torch.no_grad():
        maps = model.net.score_map(x)
    tgt = target_score(maps, x["target_xy"])
    return {
        "toy_ap_2m": toy_ap(maps, scenes),
        "mean_score": float(mean_detection_score(maps).mean()),
        "target_score": float(tgt.mean()),
        "target_detected": float((tgt >= 0.3).float().mean()),
    }


def heatmap_part(
    model: rbl.Model, x: dict[str, torch.Tensor], scenes: list[Any], steps: int, seed: int
) -> dict[str, Any]:
    y = torch.ones(len(scenes), dtype=torch.long)
    start = time.perf_counter()
    r = rbl.create_attack("fusion_heatmap", steps=steps)(model, x, y, "patch:1@camera", seed=seed)
    heat = r.metrics["heatmap"]
    objects = torch.stack([object_pixels(s) for s in scenes]).float()
    objects = F.max_pool2d(objects[:, None], 3, stride=1, padding=1)[:, 0] > 0
    on_obj = (heat * objects).flatten(1).sum(1) / heat.flatten(1).sum(1).clamp_min(1e-12)
    share = objects.float().flatten(1).mean(1)
    return {
        "steps": steps,
        "heatmap_mean": float(heat.mean()),
        "top10_mass": r.metrics["heatmap_top10_mass"],
        "object_mass_share": float(on_obj.mean()),
        "object_area_share": float(share.mean()),
        "object_lift": float((on_obj / share).mean()),
        "object_lift_per_scene": [round(float(v), 3) for v in on_obj / share],
        "score_after": r.metrics["final_score"],
        "time_s": time.perf_counter() - start,
    }


#: (label, strategy, extra attack parameters, threat): the paper's 1 x 1 m rear patch, its small
#: 2 x 2.5 m ground patch 7.3 m ahead and its large 3 x 5 m ground patch 8 m ahead.
SETTINGS = (
    ("object 1x1 m rear face", "object", {}, THREAT),
    ("scene 2x2.5 m ground @7.3 m", "scene", {}, THREAT),
    (
        "scene 3x5 m ground @8 m",
        "scene",
        {"size_m": (3.0, 5.0), "ground_centre_m": (8.0, 0.0)},
        "patch:0.06@camera",
    ),
)


def patch_part(
    model: rbl.Model,
    x: dict[str, torch.Tensor],
    scenes: list[Any],
    setting: tuple[str, str, dict[str, Any], str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    label, strategy, extra, threat = setting
    y = torch.ones(len(scenes), dtype=torch.long)
    out: dict[str, Any] = {
        "setting": label,
        "strategy": strategy,
        "threat": threat,
        "benign": _scores(model, x, scenes),
    }
    for kind, n_steps in (("adversarial", args.steps), ("random_control", 0)):
        start = time.perf_counter()
        attack = rbl.create_attack(
            "fusion_patch",
            strategy=strategy,
            steps=n_steps,
            eot_samples=args.eot,
            lr=args.lr,
            **extra,
        )
        r = attack(model, x, y, threat, seed=args.seed)
        row = _scores(model, r.x_adv, scenes)  # type: ignore[arg-type]
        row.update(
            {
                "success_rate": r.success_rate,
                "patch_area_fraction": r.metrics["patch_area_fraction"],
                "lidar_unchanged": bool(torch.equal(r.x_adv["lidar"], x["lidar"])),  # type: ignore[index]
                "time_s": time.perf_counter() - start,
            }
        )
        out[kind] = row
    return out


def heatmap_share(heat: torch.Tensor, scenes: list[Any]) -> dict[str, float]:
    """The heatmap's object mass share, object area share and lift, as :func:`heatmap_part`."""
    objects = torch.stack([object_pixels(s) for s in scenes]).float()
    objects = F.max_pool2d(objects[:, None], 3, stride=1, padding=1)[:, 0] > 0
    on_obj = (heat * objects).flatten(1).sum(1) / heat.flatten(1).sum(1).clamp_min(1e-12)
    share = objects.float().flatten(1).mean(1)
    return {
        "heatmap_object_share": float(on_obj.mean()),
        "heatmap_object_area": float(share.mean()),
        "heatmap_object_lift": float((on_obj / share).mean()),
    }


def suite_check(args: argparse.Namespace) -> dict[str, Any]:
    """``builtin:fusion`` against this file's scoring on the same scenes and generators."""
    from dataclasses import replace

    from robustbench_lite.suite.cells import cell_seed
    from robustbench_lite.suite.runner import resolve_checks
    from robustbench_lite.suite.schema import load_suite

    suite = load_suite("builtin:fusion")
    options = {**dict(suite.data.options), "seed": args.seed}
    suite = replace(suite, data=replace(suite.data, n=args.n, options=tuple(options.items())))
    x, scenes = make_scenes(args.n, seed=args.seed)
    x["boxes"] = pack_boxes(scenes)  # as fusion-world gives them: the `fusion` attack reads them
    y = torch.ones(args.n, dtype=torch.long)
    out: dict[str, Any] = {}
    for name in args.models:
        model = rbl.load_model(f"zoo:{name}")
        start = time.perf_counter()
        report = rbl.run_suite(suite, model, quick=args.quick)
        suite_s = time.perf_counter() - start
        checks = resolve_checks(suite, model, n_data=args.n, quick=args.quick)
        rows = {}
        for result in report.results:
            check = checks[result.id]
            if check.component is None:
                continue
            assert len(result.detail["cells"]) == 1, "one cell per check (shard_size >= n)"
            seed = cell_seed(suite.seed, check.id, 0)
            attack = rbl.create_attack(check.component, **check.param_dict)
            r = attack(model, x, y, check.threat, generator=torch.Generator().manual_seed(seed))
            mine: dict[str, float] = {}
            states = [("before", x), ("after", r.x_adv)]
            if check.component == "fusion_patch":  # the control as this file runs it: steps=0
                control = rbl.create_attack(check.component, **{**check.param_dict, "steps": 0})
                c = control(
                    model, x, y, check.threat, generator=torch.Generator().manual_seed(seed)
                )
                states.append(("control", c.x_adv))
            for state, inputs in states:
                s = _scores(model, inputs, scenes)  # type: ignore[arg-type]
                mine[f"toy_ap_{state}"] = s["toy_ap_2m"]
                mine[f"mean_score_{state}"] = s["mean_score"]
                mine[f"target_score_{state}"] = s["target_score"]
                mine[f"detection_rate_{state}"] = s["target_detected"]
            if "heatmap" in r.metrics:
                mine.update(heatmap_share(r.metrics["heatmap"], scenes))
            diffs = {k: abs(float(result.values[k]) - v) for k, v in mine.items()}
            rows[check.id] = {
                "suite": {k: result.values[k] for k in mine},
                "benchmark": mine,
                "max_abs_diff": max(diffs.values()),
                "strategy": (result.detail.get("metrics_per_cell") or [{}])[0].get("strategy"),
            }
            print(name, check.id, f"max |suite - benchmark| = {rows[check.id]['max_abs_diff']:.2e}")
        out[name] = {"suite_time_s": suite_s, "checks": rows}
    return out


def _table(report: dict[str, Any]) -> str:
    head = [
        "model",
        "setting",
        "AP benign/adv/random",
        "mean score",
        "target score",
        "target detected",
    ]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for name, entry in report["models"].items():
        for row in entry["patch"]:
            cells = [name, row["setting"]]
            for key in ("toy_ap_2m", "mean_score", "target_score", "target_detected"):
                cells.append(
                    " / ".join(
                        f"{row[k][key]:.3f}" for k in ("benign", "adversarial", "random_control")
                    )
                )
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="held-out scenes")
    parser.add_argument(
        "--seed", type=int, default=7, help="scene seed (training used 1000, test 2000)"
    )
    parser.add_argument("--steps", type=int, default=150, help="patch optimisation steps")
    parser.add_argument("--heatmap-steps", type=int, default=300)
    parser.add_argument("--eot", type=int, default=4)
    parser.add_argument(
        "--lr", type=float, default=0.01, help="patch Adam lr (paper 0.01 over 1000-1500 steps)"
    )
    parser.add_argument("--out", help="result JSON (default: results/fusion_patch[_quick].json)")
    parser.add_argument(
        "--quick", action="store_true", help="6 scenes, 50 patch and 60 heatmap steps (CI)"
    )
    parser.add_argument(
        "--suite-check",
        action="store_true",
        help="compare builtin:fusion's values with this file's scoring on the same scenes",
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick and not args.suite_check:
        args.n, args.steps, args.heatmap_steps = 6, 50, 60
    stem = "fusion_patch_suite_check" if args.suite_check else "fusion_patch"
    args.out = args.out or str(
        Path(__file__).parent / "results" / f"{stem}{'_quick' if args.quick else ''}.json"
    )
    start = time.perf_counter()
    if args.suite_check:
        check = {
            "benchmark": "fusion_patch --suite-check",
            "environment": environment(),
            "settings": vars(args),
            "models": suite_check(args),
            "total_time_s": time.perf_counter() - start,
        }
        write_atomic(args.out, json.dumps(check, indent=2, default=str))
        print(f"wrote {args.out} ({check['total_time_s']:.0f} s)")
        return
    x, scenes = make_scenes(args.n, seed=args.seed)
    report: dict[str, Any] = {
        "benchmark": "fusion_patch",
        "environment": environment(),
        "settings": vars(args),
        "threat": THREAT,
        "models": {},
    }
    for name in args.models:
        model = rbl.load_model(f"zoo:{name}")
        entry: dict[str, Any] = {
            "zoo_meta": {k: v for k, v in model.meta.items() if k not in ("recipe",)}
        }
        entry["heatmap"] = heatmap_part(model, x, scenes, args.heatmap_steps, args.seed)
        print(
            name,
            "heatmap",
            json.dumps({k: v for k, v in entry["heatmap"].items() if k != "object_lift_per_scene"}),
        )
        entry["patch"] = [patch_part(model, x, scenes, setting, args) for setting in SETTINGS]
        report["models"][name] = entry
    print(_table(report))
    report["total_time_s"] = time.perf_counter() - start
    write_atomic(args.out, json.dumps(report, indent=2, default=str))
    print(f"wrote {args.out} ({report['total_time_s']:.0f} s)")


if __name__ == "__main__":
    main()

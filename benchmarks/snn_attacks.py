"""SNN attacks (Lun et al., CVPR 2025, arXiv 2503.03272): surrogate choice and the SDA sparse attack.

Part A, static digits (zoo:digits-snn, trained with ATan(alpha=2), direct encoding T=4): FGSM
and PGD (10 steps of eps/4, random start, CE loss) at linf eps in {1,2,4,8,16,32,64}/255 (8x8
digits are coarse, so the grid goes past the paper's 16/255) through the attack-time surrogates
matched ATan(2), mismatched Sigmoid(4), narrow ATan(10), STE and PDSG. Reported: ASR =
(clean_acc - adv_acc) / clean_acc over the test digits (the paper's static metric) and robust
accuracy; success is re-checked on the real Heaviside model by the Attack base class. A last
row runs the plain ``fgsm`` / ``pgd`` on the real model, whose gradient is Heaviside's (zero).

Part B, event data (zoo:nmnist-snn on the N-MNIST subset, binary frames (8, 2, 17, 17)): SDA
(PDSG; PDSG with the paper's k_init=10, N=500; the matched ATan(2); STE) vs the naive top-k |g| flip (SDA without FD
filtering and reduction), SDA without reduction, and random flips (a random order of all
entries, the first (n+1)*k_init flipped at iteration n until misclassified). Threat l0 over
all 4624 entries (no budget). Reported over correctly classified test recordings: success
rate, mean / median L0 over successes only, fraction of successes with L0 < 50 / 200 / 800,
wall time per sample.

Part B counts L0 on the re-checked outputs, over re-checked successes only; for SDA it is
asserted equal to the base class's ``result.sizes["l0"]``, which the report values ``l0_mean`` /
``l0_median`` of ``builtin:snn`` average the same way.

Full run (a few minutes on a busy 2-core machine)::

    RBL_DATA_DIR=../shared/datasets python benchmarks/snn_attacks.py
    RBL_DATA_DIR=../shared/datasets python benchmarks/snn_attacks.py --quick  # < 5 min

``--quick``: 100 digits and eps in {2, 8, 32}/255 for part A; part B without the paper-settings
row (k_init=10, N=500) and with at most 30 generation iterations; written to
``results/snn_attacks_quick.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from robustbench_lite.attacks.sda import l0_summary

import robustbench_lite as rbl
from robustbench_lite.core.attack import Attack
from robustbench_lite.core.io import write_atomic
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm
from robustbench_lite.report.model import environment

SURROGATES = {
    "atan2 (matched)": {"surrogate": "atan", "alpha": 2.0},
    "sigmoid4 (mismatched)": {"surrogate": "sigmoid", "alpha": 4.0},
    "atan10 (narrow)": {"surrogate": "atan", "alpha": 10.0},
    "ste": {"surrogate": "ste"},
    "pdsg": {"surrogate": "pdsg"},
}
EPS_255 = (1, 2, 4, 8, 16, 32, 64)
QUICK_EPS_255 = (2, 8, 32)
PAPER_ROW = "sda (pdsg, paper k_init=10, N=500)"
NO_SURROGATE = "none (plain fgsm/pgd on the real model: zero gradient)"
THRESHOLDS = (50, 200, 800)


@dataclass(frozen=True)
class RandomFlips(Attack):
    """Baseline: flip the first (n+1)*k_init entries of a random order until misclassified."""

    supports = frozenset({(Norm.L0, Goal.UNTARGETED)})
    k_init: int = 4
    max_iter: int = 100

    def run(
        self,
        model: rbl.Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> Inputs:
        assert isinstance(x, torch.Tensor)
        x0 = x.flatten(1)
        order = torch.rand(x0.shape, generator=generator).argsort(dim=1)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(x0.shape[1]).expand_as(order)
        )
        out = x0.clone()
        todo = torch.ones(len(y), dtype=torch.bool)
        for n in range(self.max_iter):
            k = min((n + 1) * self.k_init, x0.shape[1])
            cand = torch.where(rank < k, 1 - x0, x0)
            with torch.no_grad():
                hit = model(cand.reshape(x.shape)).argmax(dim=1) != y
            out[todo & hit] = cand[todo & hit]
            todo &= ~hit
            if not todo.any():
                break
        return out.reshape(x.shape)


def static_part(n: int, seed: int, eps_grid: tuple[int, ...] = EPS_255) -> list[dict[str, Any]]:
    model = rbl.load_model("zoo:digits-snn")
    x, y = rbl.load_data("digits", split="test", n=n)
    rows = []
    for attack in ("snn_fgsm", "snn_pgd"):
        for label, kw in SURROGATES.items():
            for e in eps_grid:
                start = time.perf_counter()
                result = rbl.create_attack(attack, **kw)(model, x, y, f"linf:{e}/255", seed=seed)
                rows.append(
                    {
                        "attack": attack,
                        "surrogate": label,
                        "eps": f"{e}/255",
                        "n": len(y),
                        "clean_accuracy": result.clean_accuracy,
                        "robust_accuracy": result.robust_accuracy,
                        "asr": result.success_rate,
                        "time_s": time.perf_counter() - start,
                    }
                )
    real_only = replace(model, surrogate=None)  # the zoo model's default PDSG twin removed
    for attack, kw in (("fgsm", {}), ("pgd", {"steps": 10, "random_start": True})):
        for e in eps_grid:
            step = {"step_size": e / 255 / 4} if attack == "pgd" else {}
            result = rbl.create_attack(attack, **kw, **step)(
                real_only, x, y, f"linf:{e}/255", seed=seed
            )
            rows.append(
                {
                    "attack": f"snn_{attack}",
                    "surrogate": NO_SURROGATE,
                    "eps": f"{e}/255",
                    "n": len(y),
                    "clean_accuracy": result.clean_accuracy,
                    "robust_accuracy": result.robust_accuracy,
                    "asr": result.success_rate,
                    "time_s": 0.0,
                    "via": f"plain {attack}, real model",
                }
            )
    return rows


def event_methods(k_init: int, max_iter: int, *, paper_row: bool = True) -> dict[str, Attack]:
    common = {"k_init": k_init, "max_iter": max_iter}
    paper = {PAPER_ROW: rbl.create_attack("sda", k_init=10, max_iter=500)} if paper_row else {}
    return {
        "sda (pdsg)": rbl.create_attack("sda", **common),
        **paper,
        "sda (atan2, matched)": rbl.create_attack("sda", surrogate="atan", alpha=2.0, **common),
        "sda (ste)": rbl.create_attack("sda", surrogate="ste", **common),
        "sda without reduction": rbl.create_attack("sda", reduction=False, **common),
        "naive top-k |g| (no FD, no reduction)": rbl.create_attack(
            "sda", fd_filter=False, reduction=False, **common
        ),
        "random flips": RandomFlips(k_init=k_init, max_iter=max_iter),
    }


def event_part(
    k_init: int, max_iter: int, seed: int, *, paper_row: bool = True
) -> list[dict[str, Any]]:
    model = rbl.load_model("zoo:nmnist-snn")
    x, y = rbl.load_data("nmnist", split="test")
    keep = model.logits(x).argmax(dim=1) == y
    x, y = x[keep], y[keep]
    threat = f"l0:{x[0].numel()}"
    rows = []
    for label, attack in event_methods(k_init, max_iter, paper_row=paper_row).items():
        start = time.perf_counter()
        result = attack(model, x, y, threat, seed=seed)
        elapsed = time.perf_counter() - start
        l0 = (result.x_adv != x).flatten(1).sum(dim=1)
        if "l0" in result.sizes:  # SDA: the base class's measure must agree
            assert torch.equal(result.sizes["l0"], l0.double())
        binary = bool(((result.x_adv == 0) | (result.x_adv == 1)).all())
        summary = l0_summary(l0, result.success, result.clean_correct, THRESHOLDS)
        rows.append(
            {
                "method": label,
                "n": len(y),
                "k_init": k_init,
                "max_iter": max_iter,
                "binary": binary,
                "success_rate": result.success_rate,
                **{k: v for k, v in summary.items() if k != "sda_success_rate"},
                "time_per_sample_s": elapsed / len(y),
            }
        )
    return rows


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = [" | ".join(keys), " | ".join("---" for _ in keys)]
    lines += [" | ".join(fmt(r[k]) for k in keys) for r in rows]
    return "\n".join(lines)


def _asr_grid(rows: list[dict[str, Any]], attack: str) -> str:
    grid = sorted({int(r["eps"].split("/")[0]) for r in rows})
    head = ["surrogate"] + [f"{e}/255" for e in grid]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for label in (*SURROGATES, NO_SURROGATE):
        cells = {
            r["eps"]: r["asr"] for r in rows if r["attack"] == attack and r["surrogate"] == label
        }
        lines.append(" | ".join([label] + [f"{cells[f'{e}/255']:.3f}" for e in grid]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a < 5 min subset (see above)")
    parser.add_argument("--n-digits", type=int, default=None, help="part A digits (540; 100 quick)")
    parser.add_argument("--k-init", type=int, default=4)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (tiny nets: 1 is fastest)"
    )
    parser.add_argument("--out", default=None, help="default: results/snn_attacks[_quick].json")
    args = parser.parse_args()
    if args.n_digits is None:
        args.n_digits = 100 if args.quick else 540
    if args.quick:
        args.max_iter = min(args.max_iter, 30)
    if args.out is None:
        name = f"snn_attacks{'_quick' if args.quick else ''}.json"
        args.out = str(Path(__file__).parent / "results" / name)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    static = static_part(args.n_digits, args.seed, QUICK_EPS_255 if args.quick else EPS_255)
    print("Part A: ASR on zoo:digits-snn, snn_fgsm\n" + _asr_grid(static, "snn_fgsm"))
    print(
        "\nPart A: ASR on zoo:digits-snn, snn_pgd (10 steps of eps/4)\n"
        + _asr_grid(static, "snn_pgd")
    )
    try:
        events = event_part(args.k_init, args.max_iter, args.seed, paper_row=not args.quick)
    except rbl.RobustbenchLiteError as exc:  # no data folder: part B is skipped, said so
        events, skipped = [], str(exc)
    else:
        skipped = ""
    if events:
        keys = ["method", "n", "success_rate", "l0_mean", "l0_median"]
        keys += [f"frac_l0_below_{t}" for t in THRESHOLDS] + ["time_per_sample_s"]
        print(
            "\nPart B: zoo:nmnist-snn, correctly classified N-MNIST test recordings\n"
            + _table(events, keys)
        )
    else:
        print(f"\nPart B skipped: {skipped}")
    models = {
        name: rbl.load_model(name).meta.get("clean_accuracy")
        for name in ("zoo:digits-snn",) + (("zoo:nmnist-snn",) if events else ())
    }
    report = {
        "benchmark": "snn_attacks",
        "environment": environment(),
        "quick": args.quick,
        "settings": vars(args),
        "clean_accuracy": models,
        "static": static,
        "events": events,
        "events_skipped": skipped,
        "total_time_s": time.perf_counter() - start,
    }
    write_atomic(args.out, json.dumps(report, indent=2, default=str))
    print(f"\nwrote {args.out} ({report['total_time_s']:.0f} s)")


if __name__ == "__main__":
    main()

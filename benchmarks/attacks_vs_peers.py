"""Our `standard` ensemble and `pgd` against AutoAttack, torchattacks and foolbox, in one run.

On zoo:digits-cnn and zoo:digits-cnn-at, the same first ``--n`` test digits (default 500 of
the 540), linf eps 0.05 / 0.1 / 0.2 and l2 eps 0.5 / 1.0, every method gets the same data and
its robust accuracy is re-computed here the same way (clean-correct and, for the returned
point, inside the threat set and still correct). Methods:

* ``standard``  our ensemble (attacks/standard.py), defaults.
* ``aa``        the reference AutoAttack (PyPI ``pyautoattack``), version "standard", seed 0.
* ``ta_aa``     torchattacks' AutoAttack, version "standard".
* ``pgd``       our PGD, 40 steps, 1 restart, step 2.5 * eps / 40, random start.
* ``ta_pgd``    torchattacks' PGD / PGDL2 with the same steps, step size and random start.
* ``fb_pgd``    foolbox's LinfPGD / L2PGD with the same steps and step size.

Targets (issue 3): standard's robust accuracy <= aa's + 0.5 pp at every eps, in at most half
of aa's wall time; pgd at least as fast as ta_pgd. Also times ``robustbench-lite evaluate
zoo:digits-cnn`` end to end (whatever attack that command uses at the time of the run).

All methods run in this process with ``torch.set_num_threads(--threads)`` (default 1), one
after another per setting, so machine noise hits them alike. Full run::

    python benchmarks/attacks_vs_peers.py            # ~30-60 min on a busy 2-core machine
    python benchmarks/attacks_vs_peers.py --quick    # 100 digits, linf 0.1 and l2 1.0

Peers come from the ``bench`` extra (pyautoattack, torchattacks; foolbox is a runtime dep).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import torch  # noqa: E402

import robustbench_lite as rbl  # noqa: E402
from robustbench_lite.core.io import write_atomic  # noqa: E402

MODELS = ("zoo:digits-cnn", "zoo:digits-cnn-at")
THREATS = ("linf:0.05", "linf:0.1", "linf:0.2", "l2:0.5", "l2:1")
QUICK_THREATS = ("linf:0.1", "l2:1")
PGD_STEPS = 40
OUT = Path(__file__).parent / "results" / "attacks_vs_peers.json"
Runner = Callable[[rbl.Model, torch.Tensor, torch.Tensor, rbl.ThreatModel], torch.Tensor]


def _ours(name: str, **params: Any) -> Runner:
    def run(
        model: rbl.Model, x: torch.Tensor, y: torch.Tensor, threat: rbl.ThreatModel
    ) -> torch.Tensor:
        result = rbl.create_attack(name, **params)(model, x, y, threat, seed=0)
        run.metrics = dict(result.metrics)  # type: ignore[attr-defined]
        assert isinstance(result.x_adv, torch.Tensor)
        return result.x_adv

    return run


def _aa(
    model: rbl.Model, x: torch.Tensor, y: torch.Tensor, threat: rbl.ThreatModel
) -> torch.Tensor:
    from pyautoattack import AutoAttack

    norm = "Linf" if threat.norm is rbl.Norm.LINF else "L2"
    aa = AutoAttack(model.net, norm=norm, eps=threat.eps, version="standard", seed=0, device="cpu")
    x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv


def _ta_aa(
    model: rbl.Model, x: torch.Tensor, y: torch.Tensor, threat: rbl.ThreatModel
) -> torch.Tensor:
    import torchattacks

    norm = "Linf" if threat.norm is rbl.Norm.LINF else "L2"
    return torchattacks.AutoAttack(
        model.net, norm=norm, eps=threat.eps, version="standard", n_classes=10, seed=0
    )(x, y)


def _ta_pgd(
    model: rbl.Model, x: torch.Tensor, y: torch.Tensor, threat: rbl.ThreatModel
) -> torch.Tensor:
    import torchattacks

    alpha = 2.5 * threat.eps / PGD_STEPS
    cls = torchattacks.PGD if threat.norm is rbl.Norm.LINF else torchattacks.PGDL2
    return cls(model.net, eps=threat.eps, alpha=alpha, steps=PGD_STEPS, random_start=True)(x, y)


def _fb_pgd(
    model: rbl.Model, x: torch.Tensor, y: torch.Tensor, threat: rbl.ThreatModel
) -> torch.Tensor:
    from robustbench_lite.attacks.foolbox_adapter import import_foolbox

    fb = import_foolbox()
    cls = fb.attacks.LinfPGD if threat.norm is rbl.Norm.LINF else fb.attacks.L2PGD
    attack = cls(abs_stepsize=2.5 * threat.eps / PGD_STEPS, steps=PGD_STEPS, random_start=True)
    fmodel = fb.PyTorchModel(model.net.eval(), bounds=(0.0, 1.0))
    _, clipped, _ = attack(fmodel, x, y, epsilons=threat.eps)
    return clipped


METHODS: dict[str, Runner] = {
    "standard": _ours("standard"),
    "aa": _aa,
    "ta_aa": _ta_aa,
    "pgd": _ours("pgd", steps=PGD_STEPS),
    "ta_pgd": _ta_pgd,
    "fb_pgd": _fb_pgd,
}


def robust_accuracy(
    model: rbl.Model, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, threat: rbl.ThreatModel
) -> float:
    """Fraction of samples clean-correct whose returned point is outside the set or still correct."""
    clean_ok = model.logits(x).argmax(dim=1) == y
    broken = threat.contains(x, x_adv, model.bounds) & (model.logits(x_adv).argmax(dim=1) != y)
    return float((clean_ok & ~broken).float().mean())


def _one(
    method: str, model: rbl.Model, x: torch.Tensor, y: torch.Tensor, threat: rbl.ThreatModel
) -> dict[str, Any]:
    runner = METHODS[method]
    start = time.perf_counter()
    try:
        x_adv = runner(model, x, y, threat)
    except Exception as exc:  # a broken peer must not lose the rest of the run
        return {"method": method, "error": f"{type(exc).__name__}: {exc}"}
    elapsed = time.perf_counter() - start
    row = {
        "method": method,
        "robust_accuracy": robust_accuracy(model, x, y, x_adv.detach(), threat),
        "seconds": round(elapsed, 3),
    }
    metrics = getattr(runner, "metrics", None)
    if method == "standard" and metrics:
        row["members"] = {k: v for k, v in metrics.items() if k != "warning_text"}
    return row


def pgd_repeats(
    models: list[str], threats: tuple[str, ...], x: torch.Tensor, y: torch.Tensor, reps: int
) -> list[dict[str, Any]]:
    """Median of ``reps`` interleaved timings of our pgd and torchattacks' PGD per setting."""
    out = []
    for model_name in models:
        model = rbl.load_model(model_name)
        for spec in threats:
            threat = rbl.ThreatModel.parse(spec)
            times: dict[str, list[float]] = {"pgd": [], "ta_pgd": []}
            for _ in range(reps):
                for method in times:
                    start = time.perf_counter()
                    METHODS[method](model, x, y, threat)
                    times[method].append(time.perf_counter() - start)
            med = {m: sorted(t)[len(t) // 2] for m, t in times.items()}
            out.append(
                {
                    "model": model_name,
                    "threat": spec,
                    "reps": reps,
                    **{f"{m}_median_s": round(v, 3) for m, v in med.items()},
                    "pgd_over_ta_pgd": round(med["pgd"] / med["ta_pgd"], 3),
                }
            )
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def time_evaluate() -> dict[str, Any]:
    """Wall time of ``robustbench-lite evaluate zoo:digits-cnn`` in a fresh process."""
    cmd = [sys.executable, "-m", "robustbench_lite", "evaluate", "zoo:digits-cnn"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return {
        "command": "robustbench-lite evaluate zoo:digits-cnn",
        "seconds": round(time.perf_counter() - start, 2),
        "exit_code": proc.returncode,
        "stdout_tail": proc.stdout[-1500:],
    }


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for model, threat in sorted({(r["model"], r["threat"]) for r in rows}):
        by = {
            r["method"]: r
            for r in rows
            if (r["model"], r["threat"]) == (model, threat) and "error" not in r
        }
        s: dict[str, Any] = {"model": model, "threat": threat}
        if "standard" in by and "aa" in by:
            s["standard_minus_aa_pp"] = round(
                100 * (by["standard"]["robust_accuracy"] - by["aa"]["robust_accuracy"]), 2
            )
            s["standard_time_over_aa"] = round(by["standard"]["seconds"] / by["aa"]["seconds"], 3)
            s["strength_ok"] = s["standard_minus_aa_pp"] <= 0.5
            s["speed_ok"] = s["standard_time_over_aa"] <= 0.5
        if "pgd" in by and "ta_pgd" in by:
            s["pgd_time_over_ta_pgd"] = round(by["pgd"]["seconds"] / by["ta_pgd"]["seconds"], 3)
        out.append(s)
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    methods = list(METHODS)
    lines = ["model              threat     " + "".join(f"{m:>17}" for m in methods)]
    for model, threat in sorted({(r["model"], r["threat"]) for r in rows}):
        cells = []
        for m in methods:
            r = next(
                (r for r in rows if (r["model"], r["threat"], r["method"]) == (model, threat, m)),
                None,
            )
            cells.append(
                "error"
                if r is None or "error" in r
                else f"{100 * r['robust_accuracy']:5.1f}% {r['seconds']:7.1f}s"
            )
        lines.append(f"{model:<18} {threat:<10} " + "".join(f"{c:>17}" for c in cells))
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "robustbench_lite", "pyautoattack", "torchattacks", "foolbox"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 digits, linf 0.1 and l2 1.0 only")
    p.add_argument("--n", type=int, default=500, help="test digits (default 500)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    p.add_argument("--threats", help="comma-separated threat specs (default: all five)")
    p.add_argument(
        "--pgd-repeats", type=int, default=5, help="interleaved pgd/ta_pgd timings (0: skip)"
    )
    p.add_argument(
        "--no-evaluate", action="store_true", help="skip timing robustbench-lite evaluate"
    )
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    n, threats = (100, QUICK_THREATS) if args.quick else (args.n, THREATS)
    threats = tuple(args.threats.split(",")) if args.threats else threats
    x, y = rbl.load_data("digits", split="test", n=n)
    rows: list[dict[str, Any]] = []
    load_start = os.getloadavg()

    def result(evaluate: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "benchmark": "attacks_vs_peers",
            "quick": args.quick,
            "n": n,
            "threads": args.threads,
            "complete": evaluate is not None,
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "loadavg_start": load_start,
                "loadavg_now": os.getloadavg(),
            },
            "versions": _versions(),
            "pgd_steps": PGD_STEPS,
            "rows": rows,
            "summary": _summary(rows),
            "evaluate": evaluate,
        }

    for model_name in args.models.split(","):
        model = rbl.load_model(model_name)
        for spec in threats:
            threat = rbl.ThreatModel.parse(spec)
            for method in [m for m in args.methods.split(",") if m]:
                row = {"model": model_name, "threat": spec, **_one(method, model, x, y, threat)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                write_atomic(
                    args.out, json.dumps(result(None), indent=1)
                )  # partial results survive
    models = args.models.split(",")
    repeats = pgd_repeats(models, threats, x, y, args.pgd_repeats) if args.pgd_repeats else []
    evaluate = {"skipped": True} if args.no_evaluate else time_evaluate()
    final = {**result(evaluate), "pgd_repeats": repeats}
    print(_table(rows))
    for s in final["summary"]:
        print(json.dumps(s))
    for r in repeats:
        print(json.dumps(r))
    if not args.no_evaluate:
        print(
            f"evaluate zoo:digits-cnn end to end: {evaluate['seconds']} s (exit {evaluate['exit_code']})"
        )
    write_atomic(args.out, json.dumps(final, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

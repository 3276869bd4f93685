"""Power law of adversarial error, boundary tilting and masking flags over an 8-value eps sweep.

Part of ``benchmarks/defenses.py`` (issue 18, item 4), which calls :func:`run`; runnable on its
own (``python benchmarks/_defenses_powerlaw.py [--quick]``), writing
``benchmarks/results/defenses_powerlaw[_quick].json`` and the log-log figure
``benchmarks/results/defenses_powerlaw_loglog[_quick].png``.

One suite, run through ``run_suite`` exactly as a user's suite (numbers from the report's own
``scaling`` section, ``robustbench_lite/report/scaling.py``), on three models measured in the
same run:

* ``zoo:digits-cnn`` (the target of the issue), and ``zoo:digits-mlp`` as a peer (card 6a
  says the exponent is nearly universal while the prefactor differs between models);
* an *untrained* digits CNN (the same architecture, seed-0 initialisation, no training), on
  which the masking flags are expected to fire.

Checks: PGD (40 steps; 10 with ``--quick``) and FGSM at the 8 linf eps
0.004, 0.006, 0.01, 0.016, 0.025, 0.04, 0.063, 0.1 (log-spaced over 1.4 decades), PGD at linf
0.5 (half the input range: the ``unbounded_eps_not_zero`` rule's point, a 9th point of the PGD
sweep, saturated and therefore outside the fit window), and Square (1,000 queries; 300 quick)
at 0.04 and 0.1 as the black-box peer. Data: the 540 digits of the test split (200 quick).

Development numbers: the eps grid was chosen after looking at digits-cnn's PGD error on these
test digits (error 0.3 near eps 0.07), so the digits-cnn fit window is tuned to that model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import robustbench_lite as rbl
from robustbench_lite.core.io import write_atomic
from robustbench_lite.report.model import environment, jsonable
from robustbench_lite.report.scaling import Sweep, sweeps
from robustbench_lite.report.scaling_plot import loglog_figure
from robustbench_lite.suite.runner import run_suite

EPS = (0.004, 0.006, 0.01, 0.016, 0.025, 0.04, 0.063, 0.1)
UNBOUNDED_EPS = 0.5
BLACK_BOX_EPS = (0.04, 0.1)
RESULTS = Path(__file__).parent / "results"


def suite_yaml(n: int, steps: int, queries: int) -> str:
    """The benchmark's suite (see module doc)."""
    eps = ", ".join(f"{e:g}" for e in EPS)
    return textwrap.dedent(
        f"""\
        version: 1
        name: defenses-powerlaw
        seed: 0
        shard_size: 540
        data: {{source: digits, split: test, n: {n}}}
        checks:
          - {{id: clean, expect: {{}}}}
          - {{id: pgd, attack: pgd, params: {{steps: {steps}}}, threat: "linf:0.1", eps: [{eps}], expect: {{}}}}
          - {{id: pgd-unbounded, attack: pgd, params: {{steps: {steps}}}, threat: "linf:{UNBOUNDED_EPS:g}", expect: {{}}}}
          - {{id: fgsm, attack: fgsm, threat: "linf:0.1", eps: [{eps}], expect: {{}}}}
          - {{id: square, attack: square, params: {{n_queries: {queries}}}, threat: "linf:0.1", eps: [{", ".join(f"{e:g}" for e in BLACK_BOX_EPS)}], expect: {{}}}}
        """
    )


def untrained_cnn() -> rbl.Model:
    """The digits CNN architecture at its seed-0 initialisation (never trained)."""
    from robustbench_lite.zoo.digits import digits_cnn

    with torch.random.fork_rng():  # seed 0 without touching the caller's global stream
        torch.manual_seed(0)
        net = digits_cnn()
    return rbl.Model(net=net, name="untrained digits-cnn", input_shape=(1, 8, 8), num_classes=10)


def _summary(s: Sweep) -> dict[str, Any]:
    out: dict[str, Any] = {
        "eps": list(s.eps),
        "robust_accuracy": [p.robust_accuracy for p in s.points],
        "success_rate": [p.success_rate for p in s.points],
        "adversarial_loss": [p.adversarial_loss for p in s.points],
        "tilt_angle_deg": [p.tilt_angle_deg for p in s.points],
        "power_law": s.fit.to_dict() if s.fit else None,
        "power_law_all": s.fit_all.to_dict() if s.fit_all else None,
        "fit_note": s.fit_note,
        "masking_flags": [f.to_dict() for f in s.flags],
        "flags_fired": sorted({f.name for f in s.flags}),
    }
    tilts = [p.tilt_angle_deg for p in s.points if p.eps in EPS and p.tilt_angle_deg is not None]
    out["tilt_angle_deg_median_over_sweep"] = sorted(tilts)[len(tilts) // 2] if tilts else None
    return out


def run(quick: bool) -> dict[str, Any]:
    """Run the benchmark; write the figure; return the JSON-ready results (see module doc)."""
    n, steps, queries = (200, 10, 300) if quick else (540, 40, 1000)
    models: list[tuple[str, Any]] = [
        ("zoo:digits-cnn", "zoo:digits-cnn"),
        ("zoo:digits-mlp", "zoo:digits-mlp"),
        ("untrained digits-cnn", untrained_cnn()),
    ]
    out: dict[str, Any] = {
        "setting": {
            "data": f"digits test split, first {n}",
            "eps": list(EPS),
            "unbounded_eps": UNBOUNDED_EPS,
            "pgd_steps": steps,
            "square_queries": queries,
            "black_box_eps": list(BLACK_BOX_EPS),
            "quick": quick,
        },
        "models": {},
    }
    drawn: list[Sweep] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "powerlaw.yaml"
        path.write_text(suite_yaml(n, steps, queries))
        for label, spec in models:
            start = time.perf_counter()
            report = run_suite(path, rbl.load_model(spec) if isinstance(spec, str) else spec)
            found = {s.component: s for s in sweeps(report.results)}
            out["models"][label] = {
                "clean_accuracy": report.results[0].values.get("clean_accuracy"),
                "wall_s": round(time.perf_counter() - start, 2),
                **{name: _summary(s) for name, s in found.items() if name in ("pgd", "fgsm")},
                "flags_fired": sorted({f.name for s in found.values() for f in s.flags}),
            }
            drawn += [
                replace(s, component=f"{label}: {s.component}")
                for s in found.values()
                if s.fit is not None and s.component in ("pgd", "fgsm")
            ]
            print(_line(label, out["models"][label]))
    figure = f"defenses_powerlaw_loglog{'_quick' if quick else ''}.png"
    RESULTS.mkdir(exist_ok=True)
    loglog_figure(drawn).savefig(RESULTS / figure, format="png")
    out["figures"] = [f"benchmarks/results/{figure}"]
    cnn = out["models"]["zoo:digits-cnn"]["pgd"]["power_law"]
    out["target"] = {
        "digits_cnn_pgd_exponent": cnn and cnn["exponent"],
        "digits_cnn_pgd_exponent_se": cnn and cnn["exponent_se"],
        "digits_cnn_pgd_tilt_deg": out["models"]["zoo:digits-cnn"]["pgd"][
            "tilt_angle_deg_median_over_sweep"
        ],
        "untrained_flags_fired": out["models"]["untrained digits-cnn"]["flags_fired"],
        "trained_flags_fired": out["models"]["zoo:digits-cnn"]["flags_fired"],
    }
    return jsonable(out)  # type: ignore[no-any-return]


def _line(label: str, m: dict[str, Any]) -> str:
    parts = [f"{label}: clean {m['clean_accuracy']:.3f}, {m['wall_s']:.0f} s"]
    for attack in ("pgd", "fgsm"):
        fit = m[attack]["power_law"]
        parts.append(
            f"{attack} b = {fit['exponent']:.3f} +- {fit['exponent_se']:.3f} "
            f"({fit['n_points']} pts, prefactor {fit['prefactor']:.3g})"
            if fit
            else f"{attack}: {m[attack]['fit_note']}"
        )
        parts.append(f"tilt {m[attack]['tilt_angle_deg_median_over_sweep']}")
    parts.append(f"flags {m['flags_fired'] or 'none'}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 digits, PGD-10, Square 300")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny nets: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = run(args.quick)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["env"] = environment()
    path = RESULTS / f"defenses_powerlaw{'_quick' if args.quick else ''}.json"
    write_atomic(path, json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

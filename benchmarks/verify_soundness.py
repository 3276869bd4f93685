"""Differential soundness fuzzer of the smt verifier against exact MILP ground truth.

Usage::

    python benchmarks/verify_soundness.py --n 1000          # writes results/verify_soundness.json
    python benchmarks/verify_soundness.py --quick           # 60 instances, 10 per kind group
    python benchmarks/verify_soundness.py --n 300 --relu-only --out results/verify_soundness_relu.json

Random small networks of every supported kind (MLP, conv, residual, BatchNorm, average
pooling, input normalization, and MLPs with a planted counterexample: a narrow spike that
breaks the property only inside a tiny region) are built as ordinary torch modules. Each comes
with its own description as a DAG of affine maps, ReLUs and adds, written by the generator and
independent of the verifier's tracing; the exact minimum of each output constraint over each
input box is found by a MILP (scipy's HiGHS, big-M ReLUs on sound interval bounds). Thresholds
are then placed a margin of 1e-4 to 1e-1 of the output scale above (sat) or below (unsat) the
minimum; properties have one or two disjuncts and one or two input boxes.

Every answer is classified: correct, wrong (VERIFIED a sat instance or FALSIFIED an unsat one),
invalid counterexample (FALSIFIED with a witness that fails the float32 re-check), timeout,
unknown or refused. Target: 0 wrong, 0 invalid.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

KINDS = ("mlp", "conv", "residual", "batchnorm", "avgpool", "normalization", "planted")
OUT = 3
RESULTS = Path(__file__).resolve().parent / "results" / "verify_soundness.json"


# ---------------------------------------------------------------- networks and their DAGs
@dataclass
class Dag:
    """The generator's own description: ``ops`` in order over flat tensors (0 = the input).

    ``("affine", src, W, b)``, ``("relu", src)``, ``("add", a, b)``; each op makes a new tensor.
    """

    n_in: int
    ops: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, *op: Any) -> int:
        self.ops.append(op)
        return len(self.ops)

    def forward(self, x: np.ndarray) -> np.ndarray:
        vals = [x]
        for op in self.ops:
            if op[0] == "affine":
                vals.append(vals[op[1]] @ op[2].T + op[3])
            elif op[0] == "relu":
                vals.append(np.maximum(vals[op[1]], 0.0))
            else:
                vals.append(vals[op[1]] + vals[op[2]])
        return vals[-1]


def matrix_of(fn: Any, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The exact affine map of a torch callable on flat vectors, in float64."""
    n = math.prod(in_shape)
    with torch.no_grad():
        zero = fn(torch.zeros((1, *in_shape), dtype=torch.float64)).reshape(1, -1)
        eye = fn(torch.eye(n, dtype=torch.float64).reshape((n, *in_shape))).reshape(n, -1)
    return (eye - zero).T.numpy().copy(), zero[0].numpy().copy()


def _double(mod: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(mod).double().eval()


class Chain(nn.Module):
    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(x.shape[0], -1) if isinstance(self.body[0], nn.Linear) else x)


class ResidualNet(nn.Module):
    def __init__(self, c: int, rng: torch.Generator) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, 1, 3, padding=1)
        self.head = nn.Linear(16, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        y = torch.relu(x + self.conv2(h))
        return self.head(y.flatten(1))


class Planted(nn.Module):
    """An MLP minus a spike that is non-zero only within L1 radius 1/k of ``point``."""

    def __init__(self, base: nn.Module, point: torch.Tensor, k: float, depth: float) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("point", point)
        self.k, self.depth = k, depth
        self.pos = nn.Linear(point.numel(), point.numel())
        self.neg = nn.Linear(point.numel(), point.numel())
        with torch.no_grad():
            eye = torch.eye(point.numel())
            self.pos.weight.copy_(eye)
            self.pos.bias.copy_(-point)
            self.neg.weight.copy_(-eye)
            self.neg.bias.copy_(point)
        self.spike = nn.Linear(2 * point.numel(), 1)
        with torch.no_grad():
            self.spike.weight.fill_(-k)
            self.spike.bias.fill_(1.0)
        self.out = nn.Linear(1, OUT)
        with torch.no_grad():
            self.out.weight.zero_()
            self.out.weight[0, 0] = -depth
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dist = torch.cat([torch.relu(self.pos(x)), torch.relu(self.neg(x))], dim=1)
        return self.base(x) + self.out(torch.relu(self.spike(dist)))


def _init(net: nn.Module, gen: torch.Generator) -> None:
    for p in net.parameters():
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / math.sqrt(max(p.shape[-1], 1))))


def build(kind: str, seed: int) -> tuple[nn.Module, Dag, tuple[int, ...], tuple[Any, Any]]:
    """A random network of ``kind``: (module, its DAG, input shape, (mean, std) or (None, None))."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    if kind in ("mlp", "planted"):
        n_in, h = int(rng.integers(2, 5)), int(rng.integers(6, 14))
        base = Chain(nn.Linear(n_in, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, OUT))
        _init(base, gen)
        dag = Dag(n_in)
        t = 0
        for layer in base.body:
            if isinstance(layer, nn.Linear):
                W, b = matrix_of(_double(layer), (n_in if t == 0 else layer.in_features,))
                t = dag.add("affine", t, W, b)
            else:
                t = dag.add("relu", t)
        if kind == "mlp":
            return base.eval(), dag, (n_in,), (None, None)
        point = torch.from_numpy(rng.uniform(0.3, 0.7, n_in).astype(np.float32))
        net = Planted(base, point, k=float(rng.uniform(50, 200)), depth=float(rng.uniform(2, 6)))
        spike_dag = _planted_dag(net, dag, n_in)
        return net.eval(), spike_dag, (n_in,), (None, None)
    shape = (1, 4, 4)
    if kind == "residual":
        net = ResidualNet(int(rng.integers(2, 4)), gen)
        _init(net, gen)
        dag = Dag(16)
        W1, b1 = matrix_of(_double(net.conv1), shape)
        h = dag.add("relu", dag.add("affine", 0, W1, b1))
        W2, b2 = matrix_of(_double(net.conv2), (net.conv1.out_channels, 4, 4))
        y = dag.add("relu", dag.add("add", 0, dag.add("affine", h, W2, b2)))
        Wh, bh = matrix_of(_double(net.head), (16,))
        dag.add("affine", y, Wh, bh)
        return net.eval(), dag, shape, (None, None)
    c = int(rng.integers(2, 4))
    layers: list[nn.Module] = [nn.Conv2d(1, c, 3, padding=1)]
    if kind == "batchnorm":
        bn = nn.BatchNorm2d(c)
        layers.append(bn)
    layers.append(nn.ReLU())
    if kind == "avgpool":
        layers += [nn.AvgPool2d(2), nn.Flatten(), nn.Linear(c * 4, OUT)]
    else:
        layers += [nn.Flatten(), nn.Linear(c * 16, OUT)]
    net = Chain(*layers)
    _init(net, gen)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
    net.eval()  # before any forward: a training-mode BatchNorm would update its statistics
    mean_std: tuple[Any, Any] = (None, None)
    if kind == "normalization":
        mean_std = ((float(rng.uniform(0.2, 0.6)),), (float(rng.uniform(0.2, 0.5)),))
    dag = Dag(16)
    t, cur = 0, shape
    if mean_std[0] is not None:
        m, s = mean_std[0][0], mean_std[1][0]
        t = dag.add("affine", t, np.eye(16) / s, np.full(16, -m / s))
    pending: list[nn.Module] = []
    for layer in net.body:
        if isinstance(layer, nn.ReLU):
            W, b = matrix_of(_double(nn.Sequential(*pending)), cur)
            t = dag.add("relu", dag.add("affine", t, W, b))
            with torch.no_grad():
                cur = tuple(nn.Sequential(*pending)(torch.zeros((1, *cur))).shape[1:])
            pending = []
        else:
            pending.append(layer)
    W, b = matrix_of(_double(nn.Sequential(*pending)), cur)
    dag.add("affine", t, W, b)
    return net.eval(), dag, shape, mean_std


def _planted_dag(net: Planted, base: Dag, n_in: int) -> Dag:
    dag = Dag(n_in, list(base.ops))
    y = len(dag.ops)
    p = dag.add("relu", dag.add("affine", 0, *matrix_of(_double(net.pos), (n_in,))))
    q = dag.add("relu", dag.add("affine", 0, *matrix_of(_double(net.neg), (n_in,))))
    Ws, bs = matrix_of(_double(net.spike), (2 * n_in,))
    # spike(cat(p, q)) = Ws[:, :n] p + Ws[:, n:] q + bs: two affine maps added
    sp = dag.add("affine", p, Ws[:, :n_in], bs)
    sq = dag.add("affine", q, Ws[:, n_in:], np.zeros(1))
    g = dag.add("relu", dag.add("add", sp, sq))
    Wo, bo = matrix_of(_double(net.out), (1,))
    return _add_tail(dag, y, g, Wo, bo)


def _add_tail(dag: Dag, y: int, g: int, Wo: np.ndarray, bo: np.ndarray) -> Dag:
    dag.add("add", y, dag.add("affine", g, Wo, bo))
    return dag


# ---------------------------------------------------------------- exact minimum by MILP
def milp_min(dag: Dag, lo: np.ndarray, hi: np.ndarray, row: np.ndarray) -> tuple[float, np.ndarray]:
    """min over x in [lo, hi] of ``row . f(x)``, exactly (HiGHS MILP); returns (value, argmin)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    sizes, bounds, index = [dag.n_in], [(lo.copy(), hi.copy())], [0]
    for op in dag.ops:
        if op[0] == "affine":
            W, b = op[2], op[3]
            lb, ub = bounds[op[1]]
            Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
            bounds.append((Wp @ lb + Wn @ ub + b, Wp @ ub + Wn @ lb + b))
            sizes.append(W.shape[0])
        elif op[0] == "relu":
            lb, ub = bounds[op[1]]
            bounds.append((np.maximum(lb, 0), np.maximum(ub, 0)))
            sizes.append(sizes[op[1]])
        else:
            (la, ua), (lb_, ub_) = bounds[op[1]], bounds[op[2]]
            bounds.append((la + lb_, ua + ub_))
            sizes.append(sizes[op[1]])
        index.append(index[-1] + sizes[-2])
    n_cont = index[-1] + sizes[-1]
    relus = [(k + 1, op[1]) for k, op in enumerate(dag.ops) if op[0] == "relu"]
    n_bin = sum(sizes[t] for t, _ in relus)
    n = n_cont + n_bin
    rows, lbs, ubs = [], [], []

    def var(t: int, i: int) -> int:
        return index[t] + i

    for k, op in enumerate(dag.ops):
        t = k + 1
        if op[0] == "affine":
            W, b = op[2], op[3]
            for i in range(W.shape[0]):
                r = np.zeros(n)
                r[var(t, i)] = 1.0
                r[index[op[1]] : index[op[1]] + W.shape[1]] -= W[i]
                rows.append(r)
                lbs.append(b[i])
                ubs.append(b[i])
        elif op[0] == "add":
            for i in range(sizes[t]):
                r = np.zeros(n)
                r[var(t, i)], r[var(op[1], i)], r[var(op[2], i)] = 1.0, -1.0, -1.0
                rows.append(r)
                lbs.append(0.0)
                ubs.append(0.0)
    b0 = n_cont
    for t, src in relus:
        lz, uz = bounds[src]
        for i in range(sizes[t]):
            a, z, d = var(t, i), var(src, i), b0 + i
            r = np.zeros(n)
            r[a], r[z] = 1.0, -1.0  # a >= z
            rows.append(r)
            lbs.append(0.0)
            ubs.append(np.inf)
            r = np.zeros(n)
            r[a], r[z], r[d] = 1.0, -1.0, -lz[i]  # a <= z - l (1 - d)
            rows.append(r)
            lbs.append(-np.inf)
            ubs.append(-lz[i])
            r = np.zeros(n)
            r[a], r[d] = 1.0, -max(uz[i], 0.0)  # a <= u d
            rows.append(r)
            lbs.append(-np.inf)
            ubs.append(0.0)
        b0 += sizes[t]
    var_lb = np.concatenate([bounds[t][0] for t in range(len(sizes))] + [np.zeros(n_bin)])
    var_ub = np.concatenate([bounds[t][1] for t in range(len(sizes))] + [np.ones(n_bin)])
    cost = np.zeros(n)
    cost[index[-1] : index[-1] + sizes[-1]] = row
    integrality = np.concatenate([np.zeros(n_cont), np.ones(n_bin)])
    res = milp(
        cost,
        constraints=LinearConstraint(np.array(rows), lbs, ubs),
        integrality=integrality,
        bounds=Bounds(var_lb, var_ub),
        options={"mip_rel_gap": 0.0, "time_limit": 120.0},
    )
    if res.status != 0:
        raise RuntimeError(f"MILP failed: {res.message}")
    return float(res.fun), np.clip(res.x[: dag.n_in], lo, hi)


# ---------------------------------------------------------------- instances
@dataclass
class Instance:
    kind: str
    seed: int
    truth: str  # "sat" or "unsat"
    margin: float
    model: Any
    prop: Any
    dag: Dag


def make_instance(kind: str, seed: int) -> Instance:
    """One property with a known answer; half of the seeds are sat, half unsat."""
    from robustbench_lite.verify.properties import Case, Property

    import robustbench_lite as rbl

    net, dag, shape, (mean, std) = build(kind, seed)
    rng = np.random.default_rng(seed + 7)
    n_in = dag.n_in
    model = rbl.Model(net=net, input_shape=shape, bounds=(0.0, 1.0), mean=mean, std=std)
    n_boxes = 1 + int(rng.random() < 0.3)
    n_rows = 1 + int(rng.random() < 0.3)
    want_sat = seed % 2 == 0
    log_margin = rng.uniform(-4, -1)
    cases, sat_done = [], False
    for _ in range(n_boxes):
        width = rng.uniform(0.05, 0.3, n_in)
        if kind == "planted":
            center = net.point.double().numpy() + rng.uniform(-0.02, 0.02, n_in)
        else:
            center = rng.uniform(0.2, 0.8, n_in)
        lo, hi = np.clip(center - width / 2, 0, 1), np.clip(center + width / 2, 0, 1)
        pts = rng.uniform(lo, hi, (256, n_in))
        scale = float(np.std(dag.forward(pts))) or 1.0
        disjuncts = []
        for _ in range(n_rows):
            i, j = rng.choice(OUT, 2, replace=False)
            row = np.zeros(OUT)
            row[i], row[j] = 1.0, -1.0
            value, x_star = milp_min(dag, lo, hi, row)
            margin = 10**log_margin * scale
            if want_sat and not sat_done:
                achieved = float(row @ dag.forward(x_star[None])[0])
                t, sat_done = max(achieved, value) + margin, True
            else:
                t = value - margin
            disjuncts.append((row[None], np.array([t])))
        cases.append(Case(lo, hi, tuple(disjuncts)))
    prop = Property(n_in, OUT, tuple(cases))
    return Instance(kind, seed, "sat" if want_sat else "unsat", 10**log_margin, model, prop, dag)


def classify(inst: Instance, timeout_s: float, relu_only: bool = False) -> dict[str, Any]:
    """Run the verifier on ``inst`` and classify its answer against the ground truth;
    ``relu_only`` sends every instance through ReLU branch and bound (no input splitting)."""
    from robustbench_lite.core.registry import create_verifier
    from robustbench_lite.core.types import Status

    start = time.monotonic()
    kw: dict[str, Any] = {"input_split_max_dim": 0} if relu_only else {}
    res = create_verifier("smt", workers=1, **kw).verify_property(
        inst.model, inst.prop, timeout_s=timeout_s
    )
    elapsed = time.monotonic() - start
    if res.status is Status.FALSIFIED:
        x = np.asarray(res.x, dtype=np.float64)
        shape = tuple(inst.model.input_shape)
        with torch.no_grad():
            y = inst.model(torch.from_numpy(x.astype(np.float32).reshape((1, *shape)))).double()
        valid = inst.prop.holds_at(x.astype(np.float32).astype(np.float64), y.numpy()[0])
        outcome = "invalid" if not valid else ("correct" if inst.truth == "sat" else "wrong")
    elif res.status is Status.VERIFIED:
        outcome = "correct" if inst.truth == "unsat" else "wrong"
    else:
        outcome = "timeout" if res.reason == "timeout" else "unknown"
    return {
        "kind": inst.kind,
        "seed": inst.seed,
        "truth": inst.truth,
        "margin": inst.margin,
        "outcome": outcome,
        "time_s": round(elapsed, 4),
        "reason": str(res.reason)[:160] if outcome in ("refused", "unknown") else None,
        "method": str(res.stats.get("method", "")),
    }


def run(n: int, timeout_s: float, seed0: int = 0, relu_only: bool = False) -> dict[str, Any]:
    """``n`` instances spread evenly over the kinds; per-kind and total outcome counts."""
    rows = []
    for k in range(n):
        kind = KINDS[k % len(KINDS)]
        inst = make_instance(kind, seed0 + k)
        rows.append(classify(inst, timeout_s, relu_only))
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        per_kind[r["kind"]][r["outcome"]] += 1
    total = Counter(r["outcome"] for r in rows)
    solved = [r for r in rows if r["outcome"] == "correct"]
    return {
        "n": n,
        "timeout_s": timeout_s,
        "relu_only": relu_only,
        "methods": dict(Counter(r["method"] for r in rows)),
        "totals": dict(total),
        "per_kind": {k: dict(v) for k, v in per_kind.items()},
        "solved_fraction": len(solved) / n if n else float("nan"),
        "median_time_s": statistics.median(r["time_s"] for r in rows) if rows else None,
        "instances": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="instances (spread over the kinds)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per instance")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--quick", action="store_true", help="60 instances")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--relu-only",
        action="store_true",
        help="every instance through ReLU branch and bound (bab.py), no input splitting",
    )
    args = parser.parse_args()
    n = 60 if args.quick else args.n
    torch.set_num_threads(1)
    start = time.monotonic()
    result = run(n, args.timeout, args.seed, args.relu_only)
    result["wall_s"] = round(time.monotonic() - start, 1)
    result["machine"] = platform.platform()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{'kind':14s} "
        + " ".join(
            f"{o:>8s}" for o in ("correct", "wrong", "invalid", "timeout", "unknown", "refused")
        )
    )
    for kind, counts in result["per_kind"].items():
        print(
            f"{kind:14s} "
            + " ".join(
                f"{counts.get(o, 0):8d}"
                for o in ("correct", "wrong", "invalid", "timeout", "unknown", "refused")
            )
        )
    print(
        f"total {result['totals']}; solved {result['solved_fraction']:.3f}; median {result['median_time_s']} s; wall {result['wall_s']} s"
    )
    return 1 if result["totals"].get("wrong") or result["totals"].get("invalid") else 0


if __name__ == "__main__":
    raise SystemExit(main())

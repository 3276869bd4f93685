"""Conv-native alpha/beta-CROWN bounds and ReLU branch and bound on tiny conv nets.

Ground truth: sampled points (a lower bound may never exceed a sampled output), interval
arithmetic (CROWN must be at least as tight), and for the complete search an exact LP per
activation pattern of the neurons that the root bounds leave unstable.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from robustbench_lite.verify.bab import relu_bab
from robustbench_lite.verify.chain import conv_chain
from robustbench_lite.verify.complete import Float32Check
from robustbench_lite.verify.crown import (
    Domains,
    adaptive_alpha,
    optimise,
    root_bounds,
    spec_bound,
)
from robustbench_lite.verify.layers import Network, lower_model
from robustbench_lite.verify.properties import Case, Property
from torch import nn
from verify_helpers import DECIDE_S

import robustbench_lite as rbl
from robustbench_lite.core.registry import create_verifier
from robustbench_lite.core.types import Status


def _conv_net(seed: int, bn: bool = True) -> rbl.Model:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU()]
    layers += [nn.Conv2d(2, 3, 2)]
    if bn:
        layers.append(nn.BatchNorm2d(3))
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    net = nn.Sequential(*layers).eval()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return rbl.Model(net=net, bounds=(0.0, 1.0), input_shape=(1, 4, 4), mean=(0.4,), std=(0.3,))


def _box(seed: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).uniform(0, 1, 16)
    return np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)


def _domains(lower: list[torch.Tensor], upper: list[torch.Tensor], R: int, K: int) -> Domains:
    return Domains(
        [v.clone() for v in lower],
        [v.clone() for v in upper],
        [torch.zeros_like(v, dtype=torch.int8) for v in lower],
        [adaptive_alpha(lw, u)[:, None].repeat(1, R, 1) for lw, u in zip(lower, upper)],
        [torch.zeros(1, R, v.shape[1], dtype=v.dtype) for v in lower],
        torch.ones(1, K, dtype=torch.bool),
    )


def _intervals(net: Network, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    out: list[tuple[np.ndarray, np.ndarray]] = []
    lw, u = lo, hi
    for W, b in zip(net.weights, net.biases):
        pos, neg = np.maximum(W, 0), np.minimum(W, 0)
        lw, u = pos @ lw + neg @ u + b, pos @ u + neg @ lw + b
        out.append((lw, u))
        lw, u = np.maximum(lw, 0), np.maximum(u, 0)
    return out


def test_conv_chain_matches_the_exact_lowering_and_refuses_another_network() -> None:
    model = _conv_net(0)
    net = lower_model(model)
    chain = conv_chain(model, net)
    assert chain is not None
    x = torch.rand(5, 16, dtype=torch.float64)
    assert np.allclose(chain.forward(x).numpy(), net.forward(x.numpy()), atol=1e-10)
    other = lower_model(_conv_net(1))  # same shapes, other weights: Freivalds must notice
    assert conv_chain(model, other) is None
    pooled = rbl.Model(
        net=nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), bounds=(0, 1), input_shape=(1, 4, 4)
    )
    assert conv_chain(pooled, net) is None  # not in the list: the caller keeps the dense path


class _Wrapped(nn.Module):
    """A user module whose forward is a plain chain (functional relu and flatten included)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Sequential(nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class _Skip(_Wrapped):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return self.head(torch.flatten(self.pool(h + h), 1))  # h used twice: not a chain


def test_conv_chain_follows_user_modules_and_refuses_branches() -> None:
    torch.manual_seed(0)
    model = rbl.Model(net=_Wrapped().eval(), bounds=(0, 1), input_shape=(1, 4, 4))
    net = lower_model(model)
    chain = conv_chain(model, net)
    assert chain is not None and [len(b) for b in chain.blocks] == [1, 3, 1]
    x = torch.rand(4, 16, dtype=torch.float64)
    assert np.allclose(chain.forward(x).numpy(), net.forward(x.numpy()), atol=1e-10)
    skip = rbl.Model(net=_Skip().eval(), bounds=(0, 1), input_shape=(1, 4, 4))
    assert conv_chain(skip, lower_model(skip)) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounds_contain_samples_beat_intervals_and_optimise_upwards(seed: int) -> None:
    model = _conv_net(seed)
    net = lower_model(model)
    chain = conv_chain(model, net)
    assert chain is not None
    lo, hi = _box(seed, 0.15)
    lo_t, hi_t = torch.from_numpy(lo)[None], torch.from_numpy(hi)[None]
    lower, upper = root_bounds(chain, lo_t, hi_t)
    pts = np.random.default_rng(seed).uniform(lo, hi, (4000, 16))
    pts = np.concatenate([pts, lo[None], hi[None]])
    for k, (z, (il, iu)) in enumerate(zip(net.pre_activations(pts), _intervals(net, lo, hi))):
        assert (lower[k][0].numpy() <= z.min(0)).all() and (upper[k][0].numpy() >= z.max(0)).all()
        assert (lower[k][0].numpy() >= il - 1e-7).all() and (upper[k][0].numpy() <= iu + 1e-7).all()
    C = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    dom = _domains(lower, upper, 2, 2)
    crown = spec_bound(chain, dom, lo_t, hi_t, C).sound
    optimise(chain, dom, lo_t, hi_t, C, steps=20)
    alpha = spec_bound(chain, dom, lo_t, hi_t, C).sound
    sampled = (net.forward(pts) @ C.numpy().T).min(0)
    assert (alpha[0].numpy() <= sampled).all()
    assert (alpha >= crown - 1e-9).all()


def test_split_domains_with_beta_stay_below_the_constrained_samples() -> None:
    model = _conv_net(3)
    net = lower_model(model)
    chain = conv_chain(model, net)
    assert chain is not None
    lo, hi = _box(3, 0.3)
    lo_t, hi_t = torch.from_numpy(lo)[None], torch.from_numpy(hi)[None]
    lower, upper = root_bounds(chain, lo_t, hi_t)
    unstable = [
        (k, j)
        for k, (lw, u) in enumerate(zip(lower, upper))
        for j in range(lw.shape[1])
        if lw[0, j] < 0 < u[0, j]
    ]
    assert len(unstable) >= 2
    pts = np.random.default_rng(0).uniform(lo, hi, (20000, 16))
    pre = net.pre_activations(pts)
    C = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    y = net.forward(pts) @ C.numpy().T
    for phases in itertools.product([1, -1], repeat=2):
        dom = _domains(lower, upper, 1, 1)
        keep = np.ones(len(pts), dtype=bool)
        for (k, j), s in zip(unstable[:2], phases):
            dom.splits[k][0, j] = s
            if s > 0:
                dom.lower[k][0, j] = 0.0
            else:
                dom.upper[k][0, j] = 0.0
            keep &= pre[k][:, j] * s >= 0
        before = spec_bound(chain, dom, lo_t, hi_t, C).sound
        optimise(chain, dom, lo_t, hi_t, C, steps=30)
        after = spec_bound(chain, dom, lo_t, hi_t, C).sound
        assert float(after) >= float(before) - 1e-9
        if keep.any():
            assert float(after) <= y[keep].min()


def _true_min(net: Network, lo: np.ndarray, hi: np.ndarray, row: np.ndarray) -> float:
    """The exact minimum of ``row . f(x)`` over the box: a MILP (HiGHS) with big-M ReLUs on
    interval bounds, independent of the bounds under test."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    bounds = _intervals(net, lo, hi)[:-1]
    sizes = [lo.size] + [lw.size for lw, _ in bounds]
    # variables: x, then per hidden layer z_k, a_k, d_k (binary)
    starts = [0, lo.size]
    for n in sizes[1:]:
        starts.append(starts[-1] + 3 * n)
    nv = starts[-1]
    rows, lbs, ubs = [], [], []
    var_lb, var_ub = list(lo), list(hi)
    integrality = [0] * lo.size
    prev = (0, lo.size)  # slice of the previous activation
    for k, (W, b) in enumerate(zip(net.weights[:-1], net.biases[:-1])):
        n, z0 = W.shape[0], starts[k + 1]
        a0, d0 = z0 + n, z0 + 2 * n
        lz, uz = bounds[k]
        for i in range(n):
            r = np.zeros(nv)
            r[z0 + i] = 1.0
            r[prev[0] : prev[1]] -= W[i]
            rows.append(r)
            lbs.append(b[i])
            ubs.append(b[i])
            for coef, lb_, ub_ in (
                ({a0 + i: 1.0, z0 + i: -1.0}, 0.0, np.inf),  # a >= z
                ({a0 + i: 1.0, z0 + i: -1.0, d0 + i: -lz[i]}, -np.inf, -lz[i]),  # a <= z - l(1-d)
                ({a0 + i: 1.0, d0 + i: -max(uz[i], 0.0)}, -np.inf, 0.0),  # a <= u d
            ):
                r = np.zeros(nv)
                for j, v in coef.items():
                    r[j] = v
                rows.append(r)
                lbs.append(lb_)
                ubs.append(ub_)
        var_lb += list(lz) + [0.0] * n + [0.0] * n
        var_ub += list(uz) + [max(float(u), 0.0) for u in uz] + [1.0] * n
        integrality += [0] * (2 * n) + [1] * n
        prev = (a0, a0 + n)
    cost = np.zeros(nv)
    cost[prev[0] : prev[1]] = row @ net.weights[-1]
    res = milp(
        cost,
        constraints=LinearConstraint(np.array(rows), lbs, ubs),
        integrality=np.array(integrality),
        bounds=Bounds(var_lb, var_ub),
    )
    assert res.status == 0
    return float(res.fun + row @ net.biases[-1])


@pytest.mark.parametrize("seed,offset", [(0, -0.03), (1, 0.01), (2, -0.01), (4, 0.03)])
def test_small_conv_net_is_verified_exactly(seed: int, offset: float) -> None:
    model = _conv_net(seed, bn=False)
    net = lower_model(model)
    chain = conv_chain(model, net)
    assert chain is not None
    lo, hi = _box(seed, 0.2)
    row = np.array([1.0, -1.0])
    vals = net.forward(np.random.default_rng(seed).uniform(lo, hi, (3000, 16))) @ row
    t = _true_min(net, lo, hi, row) + offset * (vals.max() - vals.min())  # close to the minimum
    prop = Property(16, 2, (Case(lo, hi, ((row[None], np.array([t])),)),))
    truth = offset > 0
    out = relu_bab(
        chain, net, prop.cases[0], Float32Check(model, prop), 1e18, batch=4, leaf_unstable=0
    )
    assert out.status in ("sat", "unsat"), out.stats
    assert (out.status == "sat") == truth
    if out.status == "sat":
        assert out.x is not None
        y = model(torch.tensor(out.x, dtype=torch.float32).reshape(1, 1, 4, 4))
        assert prop.holds_at(out.x, y.detach().double().numpy()[0])
    verifier = create_verifier(
        "smt", workers=1, input_split_max_dim=0, falsify_samples=0, leaf_unstable=0
    )
    res = verifier.verify_property(model, prop, timeout_s=DECIDE_S)
    assert res.status is (Status.FALSIFIED if truth else Status.VERIFIED)
    assert res.stats["method"] in ("relu_bab", "falsify")

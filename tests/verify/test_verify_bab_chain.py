"""Chain recognition of batch-size reshapes and per-disjunct ReLU branch and bound.

Ground truth: the exact dense lowering (the chain must compute the same function, or be
refused) and, for the search, sampled points plus brute force over the activation patterns of
a tiny MLP (every pattern an LP-free check: the tiny nets are decided by dense sampling of a
1-d input line, where the exact answer is known from the piecewise-linear output).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from robustbench_lite.verify.chain import conv_chain
from robustbench_lite.verify.layers import lower_model
from torch import nn

import robustbench_lite as rbl


class _Mlp(nn.Module):
    """An MLP that flattens its image input with a batch-size reshape (``how``)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc1 = nn.Linear(32, 6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        if self.how == "shape":
            h = h.reshape(h.shape[0], -1)
        elif self.how == "size0":
            h = h.view(h.size(0), -1)
        elif self.how == "size":
            h = h.view(h.size()[0], -1)
        elif self.how == "channels":  # reads another dimension: not a plain chain here
            h = h.reshape(h.shape[0], h.shape[1] * 16)
        return self.fc2(torch.relu(self.fc1(h.reshape(h.shape[0], -1))))


class _FlatMlp(nn.Module):
    """The usual MLP: ``x.reshape(x.shape[0], -1)`` on the image input first."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.reshape(x.shape[0], -1))))


@pytest.mark.parametrize("how", ["shape", "size0", "size"])
def test_batch_size_reshapes_are_recognised_and_exact(how: str) -> None:
    torch.manual_seed(3)
    model = rbl.Model(net=_Mlp(how).eval(), bounds=(0, 1), input_shape=(1, 4, 4))
    net = lower_model(model)
    chain = conv_chain(model, net)
    assert chain is not None and chain.n_relu_layers == 2
    x = torch.rand(6, 16, dtype=torch.float64)
    assert np.allclose(chain.forward(x).numpy(), net.forward(x.numpy()), atol=1e-10)
    with torch.no_grad():
        y = model.net(x.reshape(6, 1, 4, 4).float()).double().numpy()
    assert np.allclose(chain.forward(x).numpy(), y, atol=1e-5)


def test_the_usual_mlp_flatten_is_a_chain() -> None:
    torch.manual_seed(4)
    model = rbl.Model(net=_FlatMlp().eval(), bounds=(0, 1), input_shape=(1, 4, 4))
    net = lower_model(model)
    chain = conv_chain(model, net)
    assert chain is not None and chain.sizes() == [6]
    x = torch.rand(5, 16, dtype=torch.float64)
    assert np.allclose(chain.forward(x).numpy(), net.forward(x.numpy()), atol=1e-10)


@pytest.mark.parametrize("how", ["channels"])
def test_other_shape_reads_are_refused(how: str) -> None:
    torch.manual_seed(3)
    model = rbl.Model(net=_Mlp(how).eval(), bounds=(0, 1), input_shape=(1, 4, 4))
    assert conv_chain(model, lower_model(model)) is None


@pytest.mark.parametrize(
    "seed,offsets",
    [(0, (-0.02, -0.01, -0.03)), (1, (-0.02, 0.05, -0.01)), (2, (-0.01, -0.01, -0.02))],
)
def test_per_disjunct_search_on_two_processes_is_exact(
    seed: int, offsets: tuple[float, float, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three disjuncts, each threshold just above or below its row's exact minimum (MILP):
    sat exactly when one threshold is above; the same answer with one and two processes, and
    with ``batch=1`` the two-process search really deals its domains to the pool."""
    from robustbench_lite.verify import bab
    from robustbench_lite.verify.bab import relu_bab
    from robustbench_lite.verify.complete import Float32Check
    from robustbench_lite.verify.properties import Case, Property
    from test_verify_crown import _box, _conv_net, _true_min  # same folder, on sys.path

    model = _conv_net(seed, bn=False)
    net = lower_model(model)
    chain = conv_chain(model, net)
    assert chain is not None
    lo, hi = _box(seed, 0.2)
    xs = np.random.default_rng(seed).uniform(lo, hi, (2000, 16))
    disjuncts = []
    for row, off in zip(([1.0, -1.0], [-1.0, 1.0], [1.0, 0.5]), offsets):
        r = np.array(row)
        vals = net.forward(xs) @ r
        t = _true_min(net, lo, hi, r) + off * (vals.max() - vals.min())
        disjuncts.append((r[None], np.array([t])))
    prop = Property(16, 2, (Case(lo, hi, tuple(disjuncts)),))
    truth = max(offsets) > 0
    check = Float32Check(model, prop)
    monkeypatch.setattr(bab, "GROW_PER_SHARE", 0.5)  # tiny trees: to the pool at 2 domains
    for workers in (1, 2):
        out = relu_bab(
            chain, net, prop.cases[0], check, 1e18, batch=1, leaf_unstable=0, workers=workers
        )
        assert out.status == ("sat" if truth else "unsat"), (workers, out.stats)
        if workers == 2 and not truth:
            assert out.stats.get("bab_shares", 0) >= 2, out.stats  # the pool got the domains
        if out.status == "sat":
            assert out.x is not None and check(out.x) is not None

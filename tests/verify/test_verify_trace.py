"""Exact lowering of traced modules: user-style networks lower to the same function; anything
without an exact lowering is refused with ``unsupported: <op> (<why>) at <node>``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from robustbench_lite.verify.layers import lower_model
from torch import nn
from verify_helpers import DECIDE_S

import robustbench_lite as rbl
from robustbench_lite.core.types import Status


class Wrapped(nn.Module):
    """The usual way: an nn.Sequential inside an nn.Module, reshaping in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1))


class Normalized(nn.Module):
    """A normalization layer inside the network (constant sub and div), then a branch concat."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.3]))
        self.register_buffer("std", torch.tensor([0.2]))
        self.a = nn.Linear(16, 5)
        self.b = nn.Linear(16, 5)
        self.out = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x - self.mean) / self.std).flatten(1)
        return self.out(torch.cat([torch.relu(self.a(x)), self.b(x)], dim=1))


class LeakyReLU(nn.ReLU):
    """A subclass of nn.ReLU that is not a ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.5)


def _model(net: nn.Module) -> rbl.Model:
    torch.manual_seed(0)
    for p in net.parameters():
        nn.init.normal_(p, std=0.5)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return rbl.Model(net=net.eval(), input_shape=(1, 4, 4), bounds=(0.0, 1.0))


@pytest.mark.parametrize("net", [Wrapped(), Normalized()], ids=["wrapped", "normalized"])
def test_user_style_networks_lower_to_the_same_function(net: nn.Module) -> None:
    model = _model(net)
    lowered = lower_model(model)
    x = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    expected = net.double()(x.double()).detach().numpy()
    got = lowered.forward(x.double().reshape(64, -1).numpy())
    assert np.allclose(got, expected, atol=1e-9)


def test_residual_batchnorm_pool_network_lowers_exactly() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.conv2 = nn.Conv2d(3, 1, 3, padding=1)
            self.pool = nn.AvgPool2d(2)
            self.head = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.relu(self.bn(self.conv1(x)))
            y = torch.relu(x - self.conv2(h))
            return self.head(self.pool(y).flatten(1)) + x.flatten(1)[:, :3]

    net = Block()
    model = _model(net)
    lowered = lower_model(model)
    x = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(2)) * 2 - 0.5
    expected = net.double()(x.double()).detach().numpy()
    assert np.allclose(lowered.forward(x.double().reshape(64, -1).numpy()), expected, atol=1e-9)
    # and the verifier decides it; every FALSIFIED carries a re-checked counterexample
    res = rbl.create_verifier("complete", workers=1).verify(
        model.to("cpu"),
        x[:4].clamp(0, 1),
        torch.zeros(4, dtype=torch.long),
        "linf:0.05",
        timeout_s=DECIDE_S,
    )
    assert Status.UNKNOWN not in res.per_sample
    assert all(
        i in res.counterexamples for i, s in enumerate(res.per_sample) if s is Status.FALSIFIED
    )


@pytest.mark.parametrize(
    ("net", "needle"),
    [
        (nn.Sequential(nn.Flatten(), nn.Linear(16, 4), LeakyReLU(), nn.Linear(4, 2)), "leaky_relu"),
        (nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2)), "MaxPool2d"),
        (nn.Sequential(nn.Flatten(), nn.Linear(16, 2), nn.Sigmoid()), "Sigmoid"),
    ],
    ids=["relu-subclass", "maxpool", "sigmoid"],
)
def test_ops_without_exact_lowering_are_refused_by_name(net: nn.Module, needle: str) -> None:
    with pytest.raises(rbl.UnsupportedLayerError, match=rf"^unsupported: {needle} \(.*\) at \w+"):
        lower_model(_model(net))


class Product(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(1)
        return f[:, :2] * f[:, 2:4]


class Reciprocal(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 / (x.flatten(1)[:, :2] + 2.0)


class BatchMixer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2] + x.flatten(1)[:, :2].mean(0)


@pytest.mark.parametrize(
    ("net", "needle"),
    [
        (Product(), "product of two network values"),
        (Reciprocal(), "Div only by a constant"),
        (BatchMixer(), "mean"),
    ],
    ids=["product", "reversed-div", "batch-mean"],
)
def test_non_affine_uses_are_refused(net: nn.Module, needle: str) -> None:
    with pytest.raises(rbl.UnsupportedLayerError, match=needle):
        lower_model(rbl.Model(net=net, input_shape=(1, 4, 4), bounds=(0.0, 1.0)))


def test_relu_subclass_is_never_verified_as_relu() -> None:
    """The issue's case: leaky_relu(0.5) inside an nn.ReLU subclass; y(-1) = -0.5 <= -0.25."""
    net = nn.Sequential(nn.Linear(1, 1), LeakyReLU())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(0.0)
    model = rbl.Model(net=net, input_shape=(1,), bounds=(-1.0, 0.0))
    with pytest.raises(rbl.UnsupportedLayerError, match="^unsupported: leaky_relu"):
        rbl.create_verifier("complete", workers=1).verify(
            model, torch.tensor([[-0.5]]), torch.tensor([0]), "linf:0.5", timeout_s=5
        )


def test_a_float64_network_is_verified_and_rechecked_in_float64() -> None:
    """The issue's case: y0 = (1 + 2e-8) x0 at x0 = 1 meets Y_0 >= 1.00000001 only in float64."""
    from robustbench_lite.verify.properties import Case, Property

    net = nn.Sequential(nn.Linear(1, 1)).double()
    with torch.no_grad():
        net[0].weight.fill_(1 + 2e-8)
        net[0].bias.zero_()
    model = rbl.Model(net=net, input_shape=(1,), bounds=(0.0, 2.0))
    box = np.array([1.0])
    prop = Property(1, 1, (Case(box, box, ((np.array([[-1.0]]), np.array([-1.00000001])),)),))
    res = rbl.create_verifier("complete", workers=1).verify_property(model, prop, timeout_s=10)
    assert res.status is Status.FALSIFIED and res.x is not None and float(res.x[0]) == 1.0
    assert float(net(torch.tensor([[1.0]], dtype=torch.float64)).detach()) >= 1.00000001

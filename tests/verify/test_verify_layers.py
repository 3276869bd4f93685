"""Each layer's lowering and z3 encoder against the layer's own forward pass; unsupported layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from robustbench_lite.verify.layers import lower_model
from torch import nn
from verify_helpers import random_mlp, shared_vnncomp

import robustbench_lite as rbl
from robustbench_lite.models.onnx_import import ConstOp, Reshape


def _bn() -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(2)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.3, -0.2]))
        bn.running_var.copy_(torch.tensor([2.0, 0.5]))
        bn.weight.copy_(torch.tensor([1.5, -0.7]))
        bn.bias.copy_(torch.tensor([0.1, 0.2]))
    return bn.eval()


LAYERS = [
    (nn.Linear(6, 4), (6,)),
    (nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 5, 5)),
    (_bn(), (2, 4, 4)),
    (nn.AvgPool2d(2), (2, 4, 4)),
    (nn.Flatten(), (2, 3, 3)),
    (Reshape((4, 2)), (8,)),
    (ConstOp("sub", torch.tensor([0.5, -1.0])), (2,)),
    (ConstOp("div", torch.tensor(4.0)), (3,)),
    (ConstOp("sub", torch.tensor(1.0), reverse=True), (3,)),
    (nn.ReLU(), (5,)),
    (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2)), (3,)),
]


@pytest.mark.parametrize(
    ("layer", "shape"), LAYERS, ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else ""
)
def test_lowering_matches_forward(layer: nn.Module, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    layer.eval()
    net = lower_model(rbl.Model(net=nn.Sequential(layer), input_shape=shape, bounds=(-2.0, 2.0)))
    x = torch.rand((16,) + shape, dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        ref = layer.double()(x).reshape(16, -1).numpy()
    got = net.forward(x.reshape(16, -1).numpy())
    if isinstance(layer, nn.ReLU):
        got = np.maximum(got, 0.0)  # a lone ReLU lowers to identity + ReLU + identity
        net_relu = net.pre_activations(x.reshape(16, -1).numpy())[0]
        assert np.allclose(np.maximum(net_relu, 0), ref)
    assert np.allclose(got, ref, atol=1e-10)


def test_z3_encoders_match_forward() -> None:
    import z3
    from robustbench_lite.verify.encoders import LeafSolver
    from robustbench_lite.verify.properties import Case

    torch.manual_seed(1)
    net = lower_model(
        rbl.Model(net=random_mlp([3, 5, 4, 2], seed=7), input_shape=(3,), bounds=(-1.0, 1.0))
    )
    lo, hi = -np.ones(3), np.ones(3)
    pre = [(np.full(w.shape[0], -100.0), np.full(w.shape[0], 100.0)) for w in net.weights[:-1]]
    leaf = LeafSolver(net, Case(lo, hi, ((np.zeros((0, 2)), np.zeros(0)),)), pre)
    for x in np.random.default_rng(0).uniform(-1, 1, (5, 3)):
        leaf.solver.push()
        leaf.solver.add([v == z3.RealVal(str(float(xi))) for v, xi in zip(leaf.x, x)])
        assert leaf.solver.check() == z3.sat
        m = leaf.solver.model()
        y = [float(m.eval(e, model_completion=True).as_fraction()) for e in leaf.y]
        z0 = [float(m.eval(e).as_fraction()) for e in leaf.z[0]]
        leaf.solver.pop()
        xs = np.array([float(z3.RealVal(str(float(xi))).as_fraction()) for xi in x])
        assert np.allclose(y, net.forward(xs[None])[0], atol=1e-9)
        assert np.allclose(z0, net.pre_activations(xs[None])[0][0], atol=1e-9)


def test_unsupported_layer_is_refused_with_op_and_node() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
    model = rbl.Model(net=net, input_shape=(2,), bounds=(0.0, 1.0))
    with pytest.raises(
        rbl.UnsupportedLayerError, match=r"^unsupported: Tanh \(no exact .*\) at _1$"
    ):
        rbl.create_verifier("complete", workers=1).verify(
            model, torch.rand(2, 2), torch.tensor([0, 1]), "linf:0.1", timeout_s=5
        )


@pytest.mark.skipif(shared_vnncomp() is None, reason="../shared/benchmarks/vnncomp is absent")
@pytest.mark.parametrize(
    "rel",
    [
        "acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx",
        "mnistfc/onnx/mnist-net_256x2.onnx",
        "oval21/onnx/cifar_base_kw.onnx",
    ],
)
def test_onnx_import_matches_onnxruntime(rel: str) -> None:
    import onnxruntime as ort

    from robustbench_lite.models.onnx_import import load_onnx_model

    path = shared_vnncomp() / rel  # type: ignore[operator]
    model = load_onnx_model(path)
    x = torch.rand(
        (3,) + tuple(model.input_shape or ()), generator=torch.Generator().manual_seed(0)
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ref = np.concatenate(
        [sess.run(None, {name: x[i : i + 1].numpy()})[0].reshape(1, -1) for i in range(3)]
    )
    with torch.no_grad():
        assert np.allclose(model(x).numpy(), ref, atol=1e-4)
    lowered = lower_model(model)
    assert np.allclose(lowered.forward(x.reshape(3, -1).double().numpy()), ref, atol=1e-4)

"""User networks exported with ``torch.onnx.export`` import as general graphs (issues 15, 16).

Each network is exported the usual way (dynamic batch), imported, and compared with
onnxruntime on random inputs of two batch sizes; the verifier's exact lowering computes the
same function, and the SMT verifier runs on it. Ops without an exact conversion are refused
with one line naming the op and the node.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.errors import UnsupportedLayerError
from robustbench_lite.models.onnx_import import OnnxGraph, load_onnx_model

ATOL = 1e-5


def _export(net: nn.Module, shape: tuple[int, ...], path: Path, **options: object) -> Path:
    net.eval()
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.rand((2, *shape)),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            **options,  # type: ignore[arg-type]
        )
    return path


def _onnxruntime(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"input": x})[0])


def _check(path: Path, shape: tuple[int, ...], verify: bool = True) -> rbl.Model:
    """The import, its exact lowering and onnxruntime agree; the SMT verifier runs on it."""
    from robustbench_lite.verify.layers import lower_model

    model = load_onnx_model(path)
    assert model.input_shape == shape
    net = lower_model(model)
    rng = np.random.default_rng(0)
    for batch in (1, 5):  # the batch size is free, as in the exported file
        x = rng.uniform(-1, 1, size=(batch, *shape)).astype(np.float32)
        want = _onnxruntime(path, x)
        with torch.no_grad():
            got = model(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape and np.allclose(got, want, atol=ATOL), (got, want)
        lowered = net.forward(x.reshape(batch, -1).astype(np.float64))
        assert np.allclose(lowered, want, atol=ATOL), (lowered, want)
    if verify:
        x = torch.from_numpy(rng.uniform(0, 1, size=(1, *shape)).astype(np.float32))
        y = model(x).argmax(1)
        res = rbl.create_verifier("smt", workers=1).verify(model, x, y, "linf:0.02", timeout_s=20)
        assert len(res.per_sample) == 1
        assert not any("unsupported" in r for r in res.reasons.values()), res.reasons
    return model


# ------------------------------------------------------------------ the user networks


class ReshapeMLP(nn.Module):
    """An MLP whose forward flattens its input itself (``how`` picks the spelling)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.fc1 = nn.Linear(12, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "reshape":
            x = x.reshape(x.shape[0], -1)
        elif self.how == "view":
            x = x.view(x.size(0), -1)
        elif self.how == "dims":  # the per-sample sizes are folded into constants
            x = x.reshape(x.shape[0], x.shape[1] * x.shape[2] * x.shape[3])
        else:
            x = x.flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))


class Residual(nn.Module):
    """conv -> relu -> conv, add the input, relu, flatten, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.conv1(x)))
        return self.fc(torch.relu(y + x).flatten(1))


class ConvBN(nn.Module):
    """Conv -> BatchNorm2d (eval) -> relu -> BatchNorm2d -> linear -> BatchNorm1d -> relu."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 2)
        self.bn = nn.BatchNorm2d(3)
        self.bn2 = nn.BatchNorm2d(3)
        self.fc = nn.Linear(12, 5)
        self.bn1 = nn.BatchNorm1d(5)
        self.out = nn.Linear(5, 3)
        gen = torch.Generator().manual_seed(3)
        for bn in (self.bn, self.bn2, self.bn1):  # statistics that are not the identity
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            with torch.no_grad():
                bn.weight.copy_(torch.randn(n, generator=gen))
                bn.bias.copy_(torch.randn(n, generator=gen) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn2(torch.relu(self.bn(self.conv(x))))
        return self.out(torch.relu(self.bn1(self.fc(h.flatten(1)))))


class TwoBranches(nn.Module):
    """Two branches, concatenated along the features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 2)
        self.a = nn.Linear(8, 4)
        self.b = nn.Linear(18, 5)
        self.fc = nn.Linear(9, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = torch.relu(self.a(torch.relu(self.conv(x)).flatten(1)))
        right = torch.relu(self.b(x.reshape(x.shape[0], -1)))
        return self.fc(torch.cat([left, right], dim=1))


class Normalized(nn.Module):
    """``(x - mean) / std`` with constant buffers inside the network."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, 0.25]).reshape(1, 2, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.5]).reshape(1, 2, 1, 1))
        self.conv = nn.Conv2d(2, 3, 2)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.size(0), -1))


IMAGE = (2, 3, 3)


def _seeded(make: type[nn.Module], *args: str) -> nn.Module:
    torch.manual_seed(0)
    return make(*args)


@pytest.mark.parametrize("how", ["reshape", "view", "dims", "flatten"])
def test_mlp_that_reshapes_its_input(how: str, tmp_path: Path) -> None:
    path = _export(_seeded(ReshapeMLP, how), (2, 2, 3), tmp_path / "mlp.onnx")
    model = _check(path, (2, 2, 3))
    assert isinstance(model.net, nn.Sequential)  # a chain stays a chain


def test_a_fixed_batch_export_runs_on_any_batch(tmp_path: Path) -> None:
    """Exported without dynamic axes, ``x.reshape(x.shape[0], -1)`` is folded into the
    constant shape [2, -1]: it is resolved on the declared batch of 2, for every sample."""
    net = _seeded(ReshapeMLP, "reshape").eval()
    path = tmp_path / "static.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.rand(2, 2, 2, 3),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
        )
    model = load_onnx_model(path)
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 2, 2, 3)).astype(np.float32)
    with torch.no_grad():
        assert np.allclose(model(torch.from_numpy(x)).numpy(), _onnxruntime(path, x), atol=ATOL)
        one = model(torch.from_numpy(x[:1])).numpy()
        assert np.allclose(one, model(torch.from_numpy(x)).numpy()[:1], atol=ATOL)


def test_residual_block(tmp_path: Path) -> None:
    model = _check(_export(_seeded(Residual), IMAGE, tmp_path / "res.onnx"), IMAGE)
    assert isinstance(model.net, OnnxGraph)
    x = torch.rand(4, *IMAGE)
    with torch.no_grad():  # the split attacks need: head(features(x)) is the network
        assert torch.equal(model.net.head(model.net.features(x)), model.net(x))
    copy = pickle.loads(pickle.dumps(model.net))  # process workers receive the network
    with torch.no_grad():
        assert torch.equal(copy(x), model.net(x))


@pytest.mark.parametrize("preserve", [False, True], ids=["folded", "preserved"])
def test_batchnorm_in_eval_after_a_conv(preserve: bool, tmp_path: Path) -> None:
    """The exporter folds a BatchNorm right after a Conv (unless told to keep it); either way
    the BatchNorm2d after the ReLU and the BatchNorm1d after the Gemm stay."""
    options = {"training": torch.onnx.TrainingMode.PRESERVE} if preserve else {}
    path = _export(_seeded(ConvBN), IMAGE, tmp_path / "bn.onnx", **options)
    model = _check(path, IMAGE)
    kinds = [type(m) for m in model.net.modules()]
    assert kinds.count(nn.BatchNorm2d) == (2 if preserve else 1)
    assert kinds.count(nn.BatchNorm1d) == 1


def test_two_branches_concatenated(tmp_path: Path) -> None:
    model = _check(_export(_seeded(TwoBranches), IMAGE, tmp_path / "cat.onnx"), IMAGE)
    assert isinstance(model.net, OnnxGraph)


def test_normalization_inside_the_network(tmp_path: Path) -> None:
    _check(_export(_seeded(Normalized), IMAGE, tmp_path / "norm.onnx"), IMAGE)


# ------------------------------------------------------------------ refused in one line


class Squash(nn.Module):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self.conv = nn.Conv2d(2, 2, 2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        if self.what == "sigmoid":
            h = torch.sigmoid(h)
        elif self.what == "maxpool":
            h = nn.functional.max_pool2d(h, 2)
        elif self.what == "slice":
            h = h[:, :1]
        elif self.what == "batch-arithmetic":
            h = h.reshape(h.shape[0] * 2, -1)
        elif self.what == "batch-concat":
            h = torch.cat([h, h], dim=0)
        return h.flatten(1)


@pytest.mark.parametrize(
    ("what", "words"),
    [
        ("sigmoid", r"unsupported: Sigmoid \(no exact conversion.*\) at node '/Sigmoid'"),
        ("maxpool", r"unsupported: MaxPool \(no exact conversion.*\) at node '/MaxPool'"),
        ("slice", r"unsupported: Slice \(no exact conversion.*\) at node '/Slice'"),
        ("batch-arithmetic", r"unsupported: Mul \(arithmetic on the batch size.*\) at node"),
        ("batch-concat", r"unsupported: Concat \(axis 0 is the batch dimension.*\) at node"),
    ],
)
def test_ops_without_an_exact_conversion_are_refused_by_name(
    what: str, words: str, tmp_path: Path
) -> None:
    path = _export(Squash(what), IMAGE, tmp_path / "s.onnx")
    with pytest.raises(UnsupportedLayerError, match=words) as info:
        load_onnx_model(path)
    assert "\n" not in str(info.value)


def test_product_of_two_network_values_is_refused(tmp_path: Path) -> None:
    class Square(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            return h * h

    path = _export(Square(), (4,), tmp_path / "sq.onnx")
    with pytest.raises(
        UnsupportedLayerError,
        match=r"^unsupported: Mul \(a product of two network values is not affine; only one "
        r"network value and one constant\) at node '/Mul'$",
    ):
        load_onnx_model(path)

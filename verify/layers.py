"""A network as a chain of layers: per-type lowering to two primitives, Affine and ReLU.

Each supported torch layer type is registered with ``@encodes(nn.Linear)`` and lowered to
primitives; each primitive has exactly one bound function (``verify/bounds.py``) and one z3
encoder (``verify/encoders.py``). Linear, Conv2d, BatchNorm, AvgPool, Flatten/Reshape and
constant Add/Sub/Mul/Div are all affine maps of the flattened input, so they lower to one
``Affine`` (the matrix is read off the layer itself in float64 by pushing the unit basis
through it); consecutive affine maps are folded. The verified network is therefore
``A_0, ReLU, A_1, ReLU, ..., A_L`` on flat vectors.

An unsupported layer raises :class:`UnsupportedLayerError` naming the layer and its type; the
verifier turns it into UNKNOWN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robustbench_lite.core.errors import UnsupportedLayerError
from robustbench_lite.core.model import Model
from robustbench_lite.models.onnx_import import ConstOp, Reshape


@dataclass(frozen=True)
class Affine:
    """``y = W x + b`` on flat vectors; W (m, n) float64, b (m,) float64."""

    W: np.ndarray
    b: np.ndarray
    name: str = "affine"


@dataclass(frozen=True)
class Relu:
    """Elementwise ``max(x, 0)``."""

    name: str = "relu"


Primitive = Affine | Relu
Lowering = Callable[[nn.Module, str, tuple[int, ...]], tuple[list[Primitive], tuple[int, ...]]]
_LOWERINGS: dict[type, Lowering] = {}


def encodes(*types: type) -> Callable[[Lowering], Lowering]:
    """Register the lowering of the given torch layer types (``@encodes(nn.Linear)``)."""

    def deco(fn: Lowering) -> Lowering:
        for t in types:
            _LOWERINGS[t] = fn
        return fn

    return deco


def affine_of(module: nn.Module, in_shape: tuple[int, ...]) -> tuple[Affine, tuple[int, ...]]:
    """Read the exact affine map of a linear ``module`` in float64 (basis images)."""
    n = math.prod(in_shape)
    mod = _double_copy(module)
    with torch.no_grad():
        zero = mod(torch.zeros((1,) + in_shape, dtype=torch.float64))
        out_shape = tuple(zero.shape[1:])
        b = zero.reshape(-1).numpy().copy()
        cols = []
        for start in range(0, n, 1024):
            eye = torch.eye(n, dtype=torch.float64)[start : start + 1024].reshape((-1,) + in_shape)
            cols.append((mod(eye).reshape(eye.shape[0], -1) - zero.reshape(1, -1)).numpy())
    W = np.concatenate(cols, axis=0).T.copy()
    return Affine(W, b), out_shape


def _double_copy(module: nn.Module) -> nn.Module:
    import copy

    mod = copy.deepcopy(module).double()
    mod.eval()
    return mod


@encodes(
    nn.Linear,
    nn.Conv2d,
    nn.Conv1d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.AvgPool2d,
    nn.AvgPool1d,
    ConstOp,
)
def _lower_affine(
    module: nn.Module, name: str, in_shape: tuple[int, ...]
) -> tuple[list[Primitive], tuple[int, ...]]:
    aff, out_shape = affine_of(module, in_shape)
    return [Affine(aff.W, aff.b, name)], out_shape


@encodes(nn.Flatten, Reshape, nn.Identity, nn.Dropout, nn.Unflatten)
def _lower_reshape(
    module: nn.Module, name: str, in_shape: tuple[int, ...]
) -> tuple[list[Primitive], tuple[int, ...]]:
    with torch.no_grad():
        out_shape = tuple(module(torch.zeros((1,) + in_shape)).shape[1:])
    return [], out_shape  # a reshape of the flat vector is the identity


@encodes(nn.ReLU)
def _lower_relu(
    module: nn.Module, name: str, in_shape: tuple[int, ...]
) -> tuple[list[Primitive], tuple[int, ...]]:
    return [Relu(name)], in_shape


@encodes(nn.Sequential)
def _lower_sequential(
    module: nn.Module, name: str, in_shape: tuple[int, ...]
) -> tuple[list[Primitive], tuple[int, ...]]:
    prims: list[Primitive] = []
    shape = in_shape
    for child_name, child in module.named_children():
        sub, shape = lower_module(child, f"{name}.{child_name}" if name else child_name, shape)
        prims.extend(sub)
    return prims, shape


def lower_module(
    module: nn.Module, name: str, in_shape: tuple[int, ...]
) -> tuple[list[Primitive], tuple[int, ...]]:
    """Lower one module (recursively for containers) to primitives; unknown types raise."""
    for cls in type(module).__mro__:
        if cls in _LOWERINGS:
            if (
                cls is nn.Sequential
                and type(module) is not nn.Sequential
                and type(module).forward is not nn.Sequential.forward
            ):
                break  # a Sequential subclass with its own forward is not a plain chain
            return _LOWERINGS[cls](module, name, in_shape)
    raise UnsupportedLayerError(
        f"layer {name or '<root>'!r} of type {type(module).__name__} is not supported by the verifier; "
        f"supported: {', '.join(sorted(t.__name__ for t in _LOWERINGS))}"
    )


@dataclass(frozen=True)
class Network:
    """``A_0, ReLU, A_1, ..., ReLU, A_L`` on flat float64 vectors.

    ``weights[k]`` (n_{k+1}, n_k), ``biases[k]`` (n_{k+1},); a ReLU follows every affine layer
    but the last. ``names[k]`` names the source layers of affine layer ``k``.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    input_shape: tuple[int, ...]
    names: tuple[str, ...]

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def n_relu_layers(self) -> int:
        return len(self.weights) - 1

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs (B, n_out) for flat inputs (B, n_in), float64."""
        a = x
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ W.T + b
            if k < len(self.weights) - 1:
                a = np.maximum(a, 0.0)
        return a

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Pre-ReLU values of every hidden layer for inputs (B, n_in)."""
        out, a = [], x
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            z = a @ W.T + b
            out.append(z)
            a = np.maximum(z, 0.0)
        return out


def chain_to_network(prims: list[Primitive], input_shape: tuple[int, ...]) -> Network:
    """Fold consecutive affine maps and insert identities so the chain alternates."""
    n = math.prod(input_shape)
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    names: list[str] = []
    W, b, name = np.eye(n), np.zeros(n), []
    for p in prims:
        if isinstance(p, Affine):
            W, b = p.W @ W, p.W @ b + p.b
            name.append(p.name)
        else:
            weights.append(W)
            biases.append(b)
            names.append("+".join(name) or "identity")
            W, b, name = np.eye(W.shape[0]), np.zeros(W.shape[0]), []
    weights.append(W)
    biases.append(b)
    names.append("+".join(name) or "identity")
    return Network(tuple(weights), tuple(biases), tuple(input_shape), tuple(names))


def lower_model(model: Model) -> Network:
    """The :class:`Network` computed by ``model`` on its input space (normalisation included)."""
    if model.input_shape is None:
        raise UnsupportedLayerError(f"{model.name}: the verifier needs model.input_shape to be set")
    shape = tuple(model.input_shape)
    prims: list[Primitive] = []
    if model.mean is not None and model.std is not None:
        c = shape[0]
        mean = torch.tensor(model.mean, dtype=torch.float64).reshape(
            (1, c) + (1,) * (len(shape) - 1)
        )
        std = torch.tensor(model.std, dtype=torch.float64).reshape((1, c) + (1,) * (len(shape) - 1))
        norm = _Normalize(mean, std)
        aff, _ = affine_of(norm, shape)
        prims.append(Affine(aff.W, aff.b, "normalize"))
    sub, _ = lower_module(model.net, "", shape)
    prims.extend(sub)
    return chain_to_network(prims, shape)


class _Normalize(nn.Module):
    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

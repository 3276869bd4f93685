"""A network as a chain of two primitives, Affine and ReLU, on flat float64 vectors.

``lower_model`` traces the model and lowers every node exactly (``verify/trace.py``: affine
ops fold into matrices, residual branches pass through ReLU layers exactly); each primitive
has exactly one bound function (``verify/bounds.py``) and one z3 encoder
(``verify/encoders.py``). The verified network is ``A_0, ReLU, A_1, ReLU, ..., A_L``.

Anything without an exact lowering raises :class:`UnsupportedLayerError`
(``unsupported: <op> (<why>) at <node>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robustbench_lite.core.errors import UnsupportedLayerError
from robustbench_lite.core.model import Model

from .trace import Expr, lower_graph, trace


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
    # W None stands for the identity (composing with an explicit eye costs O(n^3) for nothing)
    W: np.ndarray | None = None
    b, name = np.zeros(n), []
    for p in prims:
        if isinstance(p, Affine):
            W, b = (p.W.copy() if W is None else p.W @ W), p.W @ b + p.b
            name.append(p.name)
        else:
            weights.append(np.eye(b.shape[0]) if W is None else W)
            biases.append(b)
            names.append("+".join(name) or "identity")
            W, b, name = None, np.zeros(b.shape[0]), []
    weights.append(np.eye(b.shape[0]) if W is None else W)
    biases.append(b)
    names.append("+".join(name) or "identity")
    return Network(tuple(weights), tuple(biases), tuple(input_shape), tuple(names))


def lower_model(model: Model) -> Network:
    """The :class:`Network` computed by ``model`` on its input space (normalisation included).

    The network is traced and lowered exactly (``verify/trace.py``); anything that cannot be
    lowered exactly raises :class:`UnsupportedLayerError` naming the op and the node.
    """
    if model.input_shape is None:
        raise UnsupportedLayerError(f"{model.name}: the verifier needs model.input_shape to be set")
    shape = tuple(model.input_shape)
    n = math.prod(shape)
    start = Expr(np.eye(n), np.zeros(n), shape)
    if model.mean is not None and model.std is not None:
        view = (len(model.mean),) + (1,) * (len(shape) - 1)
        mean = np.broadcast_to(np.asarray(model.mean, dtype=np.float64).reshape(view), shape)
        std = np.broadcast_to(np.asarray(model.std, dtype=np.float64).reshape(view), shape)
        start = Expr(np.diag(1.0 / std.reshape(-1)), -(mean / std).reshape(-1), shape)
    layers, out = lower_graph(trace(model.net), start)
    prims: list[Primitive] = []
    for W, b, name in layers:
        prims += [Affine(W, b, name), Relu(name)]
    prims.append(Affine(out.M, out.c, "output"))
    return chain_to_network(prims, shape)

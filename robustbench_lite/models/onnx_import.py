"""``load_onnx_model(path)``: an ONNX chain network as a :class:`Model` (no onnx2torch).

Supported operators (a single chain, one float32 data input): Gemm, MatMul (+ Add of a
constant), Conv, Relu, Flatten, Reshape (constant shape), BatchNormalization, AveragePool,
Add/Sub/Mul by a constant, Div by a constant, and the identities Identity, Dropout and Cast to
float32. Every node is converted exactly or refused:

- an operator outside the list, or one whose attributes make it something else (a ``Cast`` to
  an integer type, ``constant / x``, a transposed ``Gemm`` input, asymmetric padding, ...)
  raises :class:`UnsupportedLayerError` ``unsupported: <op> (<why>) at node '<name>'``, so a
  verifier answers UNKNOWN with that reason and never analyses a different function;
- a network that is not float32 (a float64 input or weights, a float16 constant) is refused the
  same way: its float32 copy would compute different numbers (and get different answers);
- a malformed file (a 1-D ``Gemm`` weight, an ``AveragePool`` without ``kernel_shape``, NaN or
  infinite weights, shapes that do not fit, a tensor of more than ``RBL_MAX_TENSOR_ELEMENTS``
  elements per sample) raises :class:`CheckpointError`.

Shapes are followed through the chain on the ``meta`` device (nothing is allocated), so a
``Reshape`` to 10^12 elements or a huge declared input is refused before any work.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustbench_lite.core.errors import (
    CheckpointError,
    RobustbenchLiteError,
    UnsupportedLayerError,
)
from robustbench_lite.core.model import Model

_IDENTITY_OPS = frozenset({"Identity", "Dropout"})
_ELEMENTWISE = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
_SUPPORTED = (
    "Gemm, MatMul, Add, Sub, Mul, Div, Conv, Relu, Flatten, Reshape, BatchNormalization, "
    "AveragePool, Identity, Dropout, Cast (to float32), Constant"
)
#: Environment variable that raises the per-sample tensor size limit.
MAX_ELEMENTS_ENV = "RBL_MAX_TENSOR_ELEMENTS"
#: Default limit on the elements of any tensor of one sample (input or intermediate): 2^24,
#: 64 MB in float32 (a 3x224x224 image has 150528).
DEFAULT_MAX_ELEMENTS = 1 << 24


class ConstOp(nn.Module):
    """``x (op) const`` for op in add/sub/mul/div, with ``const`` broadcast like ONNX.

    ``reverse=True`` computes ``const (op) x`` (only meaningful for sub; the importer refuses
    ``const / x``, which is not affine).
    """

    const: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, op: str, const: torch.Tensor, reverse: bool = False) -> None:
        super().__init__()
        self.op = op
        self.reverse = reverse
        self.register_buffer("const", const.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = (self.const, x) if self.reverse else (x, self.const)
        if self.op == "add":
            return a + b
        if self.op == "sub":
            return a - b
        if self.op == "mul":
            return a * b
        return a / b


class Reshape(nn.Module):
    """Reshape each sample to ``shape`` (the batch dimension is kept)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape((x.shape[0],) + self.shape)


def max_elements() -> int:
    """The per-sample tensor size limit: ``$RBL_MAX_TENSOR_ELEMENTS`` or 2^24."""
    raw = os.environ.get(MAX_ELEMENTS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_ELEMENTS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise CheckpointError(
            f"{MAX_ELEMENTS_ENV}={raw[:40]!r} is not a positive integer; unset it "
            f"(default {DEFAULT_MAX_ELEMENTS}) or set it to a number of elements"
        )
    return value


# --------------------------------------------------------------------------- one node


@dataclass
class _Node:
    """An ONNX node with the graph's constants, for the converters and their messages."""

    proto: Any
    consts: dict[str, np.ndarray]

    @property
    def op(self) -> str:
        return str(self.proto.op_type)

    @property
    def name(self) -> str:
        outputs = list(self.proto.output)
        return str(self.proto.name or (outputs[0] if outputs else f"<{self.op}>"))

    def unsupported(self, why: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(f"unsupported: {self.op} ({why}) at node {self.name!r}")

    def malformed(self, why: str) -> CheckpointError:
        return CheckpointError(f"ONNX node {self.name!r} ({self.op}) is malformed: {why}")

    def attrs(self) -> dict[str, Any]:
        import onnx

        return {a.name: onnx.helper.get_attribute_value(a) for a in self.proto.attribute}

    def ints(self, name: str, default: list[int], length: int) -> list[int]:
        """An integer-list attribute of exactly ``length`` entries."""
        value = self.attrs().get(name, default)
        if not isinstance(value, (list, tuple)) or len(value) != length:
            raise self.unsupported(f"{name}={repr(value)[:80]}; expected {length} integers")
        return [int(v) for v in value]

    def const_name(self, index: int, what: str) -> str:
        inputs = list(self.proto.input)
        if index >= len(inputs) or not inputs[index]:
            raise self.malformed(f"its {what} (input {index}) is missing")
        name = inputs[index]
        if name not in self.consts:
            raise self.unsupported(f"its {what} {name!r} is computed, not a constant")
        return str(name)

    def weight(self, index: int, what: str) -> np.ndarray:
        """A float32 constant input, as float64 (exact)."""
        name = self.const_name(index, what)
        value = self.consts[name]
        if value.dtype != np.float32:
            raise self.unsupported(
                f"its {what} {name!r} is {value.dtype}; only float32 networks are run and "
                "verified exactly"
            )
        return value.astype(np.float64)

    def integers(self, index: int, what: str) -> np.ndarray:
        name = self.const_name(index, what)
        value = self.consts[name]
        if value.dtype.kind not in "iu":
            raise self.malformed(f"its {what} {name!r} is {value.dtype}, not integers")
        return value.astype(np.int64)


def _f32(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _exact_f32(node: _Node, array: np.ndarray, what: str) -> np.ndarray:
    """``array`` (float64), checked to be exactly representable in float32."""
    if not np.array_equal(array.astype(np.float32).astype(np.float64), array):
        raise node.unsupported(f"{what} is not exact in float32")
    return array


def _linear(weight: np.ndarray, bias: np.ndarray | None) -> nn.Linear:
    """``nn.Linear`` with ``weight`` (out, in) and optional ``bias`` (out,)."""
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(_f32(weight))
        if bias is not None:
            lin.bias.copy_(_f32(bias))
    return lin


def _bias_vector(node: _Node, bias: np.ndarray, n_out: int) -> np.ndarray:
    """An ONNX bias broadcastable to (1, n_out) as a vector (n_out,)."""
    if bias.ndim > 2 or (bias.ndim == 2 and bias.shape[0] != 1):
        raise node.unsupported(f"a bias of shape {bias.shape} (it must broadcast to (1, {n_out}))")
    flat = bias.reshape(-1)
    if flat.size not in (1, n_out):
        raise node.malformed(f"its bias has {flat.size} values for {n_out} outputs")
    return np.broadcast_to(flat, (n_out,)).copy()


def _gemm(node: _Node, shape: tuple[int, ...] | None) -> nn.Module:
    a = node.attrs()
    if a.get("transA", 0):
        raise node.unsupported("transA=1: the data input would be transposed")
    w = node.weight(1, "weight B")
    if w.ndim != 2:
        raise node.malformed(f"its weight B has shape {w.shape}; Gemm needs a 2-D matrix")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    w = _exact_f32(node, w * alpha, "alpha * B") if alpha != 1.0 else w
    if not a.get("transB", 0):
        w = w.T
    bias = None
    if len(node.proto.input) > 2 and node.proto.input[2]:
        c = node.weight(2, "bias C")
        c = _exact_f32(node, c * beta, "beta * C") if beta != 1.0 else c
        bias = _bias_vector(node, c, w.shape[0])
    return _linear(w, bias)


def _matmul(node: _Node, bias: np.ndarray | None) -> nn.Module:
    w = node.weight(1, "weight")
    if w.ndim != 2:
        raise node.unsupported(f"a weight of shape {w.shape}; only a 2-D constant matrix")
    return _linear(w.T, None if bias is None else _bias_vector(node, bias, w.shape[1]))


def _conv(node: _Node, shape: tuple[int, ...] | None) -> nn.Module:
    a = node.attrs()
    w = node.weight(1, "weight")
    if w.ndim != 4:
        raise node.unsupported(f"a {w.ndim - 2}-D kernel; only 2-D convolutions")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise node.unsupported(f"auto_pad={a['auto_pad']!r}; give explicit pads")
    pads = node.ints("pads", [0, 0, 0, 0], 4)
    if pads[0] != pads[2] or pads[1] != pads[3] or min(pads) < 0:
        raise node.unsupported(f"pads={pads}: only symmetric, non-negative padding")
    strides = node.ints("strides", [1, 1], 2)
    dilations = node.ints("dilations", [1, 1], 2)
    group = int(a.get("group", 1))
    if "kernel_shape" in a and list(a["kernel_shape"]) != list(w.shape[2:]):
        raise node.malformed(f"kernel_shape {list(a['kernel_shape'])} but weight {w.shape}")
    if min(strides + dilations) < 1 or group < 1 or w.shape[0] % group:
        raise node.malformed(f"strides {strides}, dilations {dilations}, group {group}")
    bias = None
    if len(node.proto.input) > 2 and node.proto.input[2]:
        bias = node.weight(2, "bias").reshape(-1)
        if bias.size != w.shape[0]:
            raise node.malformed(f"{bias.size} biases for {w.shape[0]} output channels")
    conv = nn.Conv2d(
        w.shape[1] * group,
        w.shape[0],
        tuple(w.shape[2:]),
        stride=(strides[0], strides[1]),
        padding=(pads[0], pads[1]),
        dilation=(dilations[0], dilations[1]),
        groups=group,
        bias=bias is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(_f32(w))
        if bias is not None and conv.bias is not None:  # conv has a bias exactly when bias is given
            conv.bias.copy_(_f32(bias))
    return conv


def _batchnorm(node: _Node, shape: tuple[int, ...] | None) -> nn.Module:
    a = node.attrs()
    if a.get("training_mode", 0):
        raise node.unsupported("training_mode=1 uses batch statistics")
    if len(node.proto.output) > 1 and any(node.proto.output[1:]):
        raise node.unsupported("running-statistics outputs (a training graph)")
    scale, bias, mean, var = (node.weight(i, w) for i, w in enumerate(_BN_INPUTS, start=1))
    eps = float(a.get("epsilon", 1e-5))
    channels = scale.size
    if any(v.shape != (channels,) for v in (scale, bias, mean, var)):
        raise node.malformed("scale, bias, mean and var must be vectors of one length")
    if not (eps >= 0 and (var + eps > 0).all()):
        raise node.malformed("var + epsilon must be positive")
    if shape is None:
        raise node.unsupported("the input shape is unknown; declare the network input's dims")
    if len(shape) in (1, 2):  # (C,) after a Gemm, or (C, L)
        bn: nn.Module = nn.BatchNorm1d(channels, eps=eps)
    elif len(shape) == 3:
        bn = nn.BatchNorm2d(channels, eps=eps)
    else:
        raise node.unsupported(f"an input of {len(shape) + 1} dimensions")
    if shape[0] != channels:
        raise node.malformed(f"{channels} channels but the input has shape {shape}")
    with torch.no_grad():
        for name, value in (
            ("weight", scale),
            ("bias", bias),
            ("running_mean", mean),
            ("running_var", var),
        ):
            getattr(bn, name).copy_(_f32(value))
    return bn.eval()


_BN_INPUTS = ("scale", "bias", "mean", "var")


def _avgpool(node: _Node, shape: tuple[int, ...] | None) -> nn.Module:
    a = node.attrs()
    if "kernel_shape" not in a:
        raise node.malformed("kernel_shape is required")
    kernel = node.ints("kernel_shape", [], 2)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise node.unsupported(f"auto_pad={a['auto_pad']!r}; give explicit pads")
    pads = node.ints("pads", [0, 0, 0, 0], 4)
    strides = node.ints("strides", [1, 1], 2)  # the ONNX default stride is 1, not the kernel
    if node.ints("dilations", [1, 1], 2) != [1, 1]:
        raise node.unsupported("dilations other than 1")
    if pads[0] != pads[2] or pads[1] != pads[3] or min(pads) < 0 or a.get("ceil_mode", 0):
        raise node.unsupported(f"pads={pads}, ceil_mode: only symmetric pads and floor mode")
    if min(kernel + strides) < 1:
        raise node.malformed(f"kernel_shape {kernel}, strides {strides}")
    if pads[0] * 2 > kernel[0] or pads[1] * 2 > kernel[1]:
        raise node.unsupported(f"pads {pads} larger than half the kernel {kernel}")
    return nn.AvgPool2d(
        (kernel[0], kernel[1]),
        stride=(strides[0], strides[1]),
        padding=(pads[0], pads[1]),
        count_include_pad=bool(a.get("count_include_pad", 0)),
    )


def _flatten(node: _Node, shape: tuple[int, ...] | None) -> nn.Module:
    if node.attrs().get("axis", 1) != 1:
        raise node.unsupported("axis != 1")
    return nn.Flatten()


def _reshape(node: _Node, shape: tuple[int, ...] | None) -> nn.Module:
    """A constant-shape Reshape, resolved on the declared input (batch 1) like ONNX does:
    0 copies the input's dimension (unless ``allowzero``), -1 takes the rest. The batch
    dimension must stay first, so each sample is reshaped on its own."""
    target = [int(s) for s in node.integers(1, "shape").reshape(-1)]
    allowzero = bool(node.attrs().get("allowzero", 0))
    if shape is None:
        raise node.unsupported("the input shape is unknown; declare the network input's dims")
    full = (1, *shape)
    n = math.prod(full)
    out = []
    for i, s in enumerate(target):
        if s == 0 and not allowzero:  # ONNX: 0 copies the input's dimension
            if i >= len(full):
                raise node.malformed(f"shape {target} copies a dimension the input lacks")
            s = full[i]
        out.append(s)
    if out.count(-1) > 1 or any(s < -1 for s in out):
        raise node.malformed(f"shape {target}: at most one -1 and no other negative sizes")
    if -1 in out:
        known = math.prod(s for s in out if s != -1)
        if known == 0 or n % known:
            raise node.malformed(f"shape {target} does not fit an input of shape {full}")
        out[out.index(-1)] = n // known
    if math.prod(out) != n:
        raise node.malformed(
            f"shape {target} has {math.prod(out)} elements, the input {full} has {n}"
        )
    if len(out) < 2 or out[0] != 1:
        raise node.unsupported(
            f"shape {target} gives {tuple(out)} for an input of shape {full}: it does not keep "
            "the batch dimension first"
        )
    return Reshape(tuple(out[1:]))


def _cast(node: _Node, shape: tuple[int, ...] | None) -> nn.Module:
    import onnx

    to = node.attrs().get("to")
    if to != onnx.TensorProto.FLOAT:
        name = _type_name(to)
        raise node.unsupported(
            f"to {name} changes values or precision; only a Cast to float32 (FLOAT) is exact"
        )
    return nn.Identity()


def _elementwise(node: _Node, shape: tuple[int, ...] | None) -> nn.Module:
    names = [x for x in node.proto.input if x in node.consts]
    if len(names) != 1 or len(node.proto.input) != 2:
        raise node.unsupported("only one network value and one constant")
    reverse = node.proto.input[0] == names[0]
    op = _ELEMENTWISE[node.op]
    const = node.weight(0 if reverse else 1, "constant")
    if op == "div" and reverse:
        raise node.unsupported("constant / x is not affine; only division by a constant")
    if op == "div" and (const == 0).any():
        raise node.unsupported("division by a constant that contains 0")
    return ConstOp(op, _f32(const), reverse)


_CONVERTERS: dict[str, Callable[[_Node, tuple[int, ...] | None], nn.Module]] = {
    "Gemm": _gemm,
    "Conv": _conv,
    "BatchNormalization": _batchnorm,
    "AveragePool": _avgpool,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Cast": _cast,
    **{op: _elementwise for op in _ELEMENTWISE},
}


# --------------------------------------------------------------------------- the graph


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """Initializers and ``Constant`` nodes by name, in their own dtypes; float ones finite."""
    consts: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        what = f"initializer {init.name!r}"
        consts[init.name] = _finite(_decode(_array, init, what), what)
    for proto in graph.node:
        if proto.op_type != "Constant":
            continue
        node = _Node(proto, consts)
        if not proto.output or not proto.output[0]:
            raise node.malformed("it has no output")
        value = _decode(_constant_value, node, f"Constant {node.name!r}")
        consts[proto.output[0]] = _finite(value, f"Constant {node.name!r}")
    return consts


def _array(tensor: Any) -> np.ndarray:
    import onnx.numpy_helper as nh

    return np.asarray(nh.to_array(tensor))


def _constant_value(node: _Node) -> np.ndarray:
    attrs = node.attrs()
    if "value" in attrs:
        return _array(attrs["value"])
    if "value_float" in attrs:
        return np.array(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], dtype=np.int64)
    kinds = ", ".join(sorted(attrs)) or "no value"
    raise node.unsupported(f"a constant given as {kinds}")


def _decode(read: Callable[[Any], np.ndarray], source: Any, what: str) -> np.ndarray:
    """``read(source)``, with a malformed tensor (data that does not fit its dims or type)
    refused."""
    try:
        return read(source)
    except RobustbenchLiteError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError) as exc:
        raise CheckpointError(
            f"ONNX {what} is malformed: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


def _type_name(elem: Any) -> str:
    """The ONNX name of a tensor element type (``FLOAT``, ``INT32``), or its number."""
    import onnx

    try:
        return str(onnx.TensorProto.DataType.Name(elem))
    except (ValueError, TypeError):
        return f"type {elem!r}"


def _finite(value: np.ndarray, what: str) -> np.ndarray:
    if value.dtype.kind in "fc" and not np.isfinite(value).all():
        raise CheckpointError(
            f"ONNX {what} holds NaN or infinite values; the network's outputs would be "
            "NaN or infinite, so it cannot be run or verified"
        )
    return value


def _check_float32(graph: Any, consts: dict[str, np.ndarray], data_input: Any) -> None:
    """Refuse a network whose input, outputs or floating weights are not float32."""
    import onnx

    float32 = onnx.TensorProto.FLOAT
    for value, role in [(data_input, "input")] + [(o, "output") for o in graph.output]:
        elem = value.type.tensor_type.elem_type
        if elem not in (float32, onnx.TensorProto.UNDEFINED):
            raise UnsupportedLayerError(
                f"unsupported: a {_type_name(elem)} network ({role} "
                f"{value.name!r}; only float32 networks are run and verified exactly, and "
                "casting would change the answers; export it in float32) at "
                f"{role} {value.name!r}"
            )
    for name, array in consts.items():
        if array.dtype.kind in "fc" and array.dtype != np.float32:
            raise UnsupportedLayerError(
                f"unsupported: {array.dtype} weights (constant {name!r}; only float32 networks "
                "are run and verified exactly; export it in float32) at constant "
                f"{name!r}"
            )


class _Shapes:
    """Follows the per-sample shape through the chain on the ``meta`` device (no allocation)."""

    def __init__(self, shape: tuple[int, ...] | None, limit: int, source: str) -> None:
        self.shape = shape
        self.limit = limit
        self.source = source
        if shape is not None:
            self._check(shape, "the network input")

    def _check(self, shape: tuple[int, ...], what: str) -> None:
        n = math.prod(shape)
        if n > self.limit:
            raise CheckpointError(
                f"{self.source}: {what} has shape {shape} ({n} elements per sample), over the "
                f"limit of {self.limit}; raise it with {MAX_ELEMENTS_ENV}=N if this is intended"
            )

    def apply(self, layer: nn.Module, node: _Node) -> None:
        if self.shape is None:
            return
        from torch.func import functional_call

        tensors = list(layer.named_parameters()) + list(layer.named_buffers())
        try:  # the layer's own code on meta copies of its tensors: shapes only, no data
            with torch.no_grad():
                out = functional_call(
                    layer,
                    {name: t.to("meta") for name, t in tensors},
                    (torch.empty((2, *self.shape), device="meta"),),
                )
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise node.malformed(
                f"it does not run on its input of shape {self.shape}: {first[:300]}"
            ) from None
        if out.ndim == 0 or out.shape[0] != 2:
            raise node.unsupported("it changes the batch dimension")
        self.shape = tuple(int(s) for s in out.shape[1:])
        self._check(self.shape, f"the output of node {node.name!r} ({node.op})")


def _convert_nodes(
    graph: Any,
    consts: dict[str, np.ndarray],
    data_input: str,
    shapes: _Shapes,
) -> tuple[list[nn.Module], str]:
    """Walk the chain from ``data_input``; fuse MatMul + Add into one ``nn.Linear``.

    Returns the layers and the name of the chain's last value.
    """
    layers: list[nn.Module] = []
    current = data_input
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    i = 0
    while i < len(nodes):
        proto = nodes[i]
        node = _Node(proto, consts)
        if proto.domain not in ("", "ai.onnx"):
            raise node.unsupported(f"operator domain {proto.domain!r}; only the ONNX standard")
        data = [x for x in proto.input if x and x not in consts]
        if data != [current] or not proto.output:
            raise node.unsupported(
                f"inputs {list(proto.input)} are not one step of a single chain; "
                "only sequential networks are supported"
            )
        op = proto.op_type
        try:
            if op == "MatMul":
                if proto.input[0] != current:
                    raise node.unsupported("a constant times x; only x times a constant")
                bias = None
                nxt = nodes[i + 1] if i + 1 < len(nodes) else None
                if nxt is not None and nxt.op_type == "Add" and proto.output[0] in nxt.input:
                    other = [x for x in nxt.input if x != proto.output[0]]
                    if len(other) == 1 and other[0] in consts:
                        bias = _Node(nxt, consts).weight(list(nxt.input).index(other[0]), "bias")
                        proto = nxt
                        i += 1
                layer = _matmul(node, bias)
            elif op == "Relu":
                layer = nn.ReLU()
            elif op in _IDENTITY_OPS:
                layer = nn.Identity()
            elif op in _CONVERTERS:
                layer = _CONVERTERS[op](node, shapes.shape)
            else:
                raise node.unsupported(f"no exact conversion; supported: {_SUPPORTED}")
        except RobustbenchLiteError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as exc:
            raise node.malformed(f"{type(exc).__name__}: {str(exc)[:300]}") from None
        shapes.apply(layer, node)
        layers.append(layer)
        current = proto.output[0]
        i += 1
    return layers, current


def load_onnx_model(path: str | Path, **kw: Any) -> Model:
    """Convert the ONNX chain network at ``path`` into a :class:`Model` (float32 torch layers).

    Args:
        path: an ``.onnx`` file with one float32 data input (the others are initializers).
        **kw: :class:`Model` fields; ``bounds`` defaults to (-inf, inf) since ONNX files carry none.

    Raises:
        CheckpointError: the file is not readable ONNX, is malformed, holds NaN/inf weights
            or tensors over the size limit.
        UnsupportedLayerError: an operator, attribute or dtype without an exact conversion
            (``unsupported: <op> (<why>) at node '<name>'``).
    """
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / ValueError / OSError
        raise CheckpointError(f"{path} is not a readable ONNX file: {exc}") from None
    graph = proto.graph
    consts = _constants(graph)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise CheckpointError(f"{path}: expected one data input, found {[i.name for i in inputs]}")
    _check_float32(graph, consts, inputs[0])
    if len(graph.output) != 1:
        raise UnsupportedLayerError(
            f"unsupported: {len(graph.output)} graph outputs (the network must return one "
            "tensor) at the graph outputs"
        )
    tensor_type = inputs[0].type.tensor_type
    dims = [d.dim_value for d in tensor_type.shape.dim]
    input_shape = (
        tuple(int(d) if d > 0 else 1 for d in dims[1:])
        if tensor_type.HasField("shape") and dims
        else None
    )
    shapes = _Shapes(input_shape, max_elements(), str(path))
    layers, last = _convert_nodes(graph, consts, inputs[0].name, shapes)
    if graph.output[0].name != last:
        raise UnsupportedLayerError(
            f"unsupported: the graph output {graph.output[0].name!r} (it is not the end of "
            f"the chain, {last!r}) at the graph outputs"
        )
    net = nn.Sequential(*layers)
    kw.setdefault("bounds", (float("-inf"), float("inf")))
    kw.setdefault("name", path.name)
    kw.setdefault("input_shape", input_shape)
    meta = {
        "format": "onnx",
        "onnx_path": str(path.resolve()),
        "onnx_input": inputs[0].name,
        "onnx_dims": dims,
    }
    return Model(net=net, meta=meta, **kw)

"""One ONNX node on network values into one torch module, exactly or refused.

Each converter reads the node's attributes and constant inputs and builds the torch module
that computes the same function (:mod:`.onnx_modules`), or raises

- :class:`UnsupportedLayerError` ``unsupported: <op> (<why>) at node '<name>'`` when the
  attributes make it an operation without an exact conversion (a transposed ``Gemm`` input,
  asymmetric padding, ``constant / x``, a Cast to an integer type, float64 weights, ...);
- :class:`CheckpointError` ``ONNX node '<name>' (<op>) is malformed: ...`` when the node
  cannot be what the ONNX standard says (a 1-D ``Gemm`` weight, an ``AveragePool`` without
  ``kernel_shape``, biases that do not fit).

``shape`` is the per-sample shape of the node's network input (batch dimension excluded), or
``None`` when the network input declares no dims.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robustbench_lite.core.errors import CheckpointError, UnsupportedLayerError

from .onnx_modules import ConstOp

#: The elementwise ONNX ops and their ConstOp / Combine names.
ELEMENTWISE = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


@dataclass
class OnnxNode:
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


def f32(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _exact_f32(node: OnnxNode, array: np.ndarray, what: str) -> np.ndarray:
    """``array`` (float64), checked to be exactly representable in float32."""
    if not np.array_equal(array.astype(np.float32).astype(np.float64), array):
        raise node.unsupported(f"{what} is not exact in float32")
    return array


def _linear(weight: np.ndarray, bias: np.ndarray | None) -> nn.Linear:
    """``nn.Linear`` with ``weight`` (out, in) and optional ``bias`` (out,)."""
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(f32(weight))
        if bias is not None:
            lin.bias.copy_(f32(bias))
    return lin


def _bias_vector(node: OnnxNode, bias: np.ndarray, n_out: int) -> np.ndarray:
    """An ONNX bias broadcastable to (1, n_out) as a vector (n_out,)."""
    if bias.ndim > 2 or (bias.ndim == 2 and bias.shape[0] != 1):
        raise node.unsupported(f"a bias of shape {bias.shape} (it must broadcast to (1, {n_out}))")
    flat = bias.reshape(-1)
    if flat.size not in (1, n_out):
        raise node.malformed(f"its bias has {flat.size} values for {n_out} outputs")
    return np.broadcast_to(flat, (n_out,)).copy()


def gemm(node: OnnxNode, shape: tuple[int, ...] | None) -> nn.Module:
    a = node.attrs()
    if a.get("transA", 0):
        raise node.unsupported("transA=1: the data input would be transposed")
    w = node.weight(1, "weight B")
    if w.ndim != 2:
        raise node.malformed(f"its weight B has shape {w.shape}; Gemm needs a 2-D matrix")
    if shape is not None and len(shape) != 1:
        raise node.malformed(f"its input has shape {(1, *shape)}; Gemm needs a 2-D matrix")
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


def matmul(node: OnnxNode, bias: np.ndarray | None) -> nn.Module:
    """``x @ W`` (+ ``bias``, the constant of an ``Add`` that only this node feeds)."""
    w = node.weight(1, "weight")
    if w.ndim != 2:
        raise node.unsupported(f"a weight of shape {w.shape}; only a 2-D constant matrix")
    return _linear(w.T, None if bias is None else _bias_vector(node, bias, w.shape[1]))


def conv(node: OnnxNode, shape: tuple[int, ...] | None) -> nn.Module:
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
    layer = nn.Conv2d(
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
        layer.weight.copy_(f32(w))
        if bias is not None and layer.bias is not None:  # a bias exactly when bias is given
            layer.bias.copy_(f32(bias))
    return layer


_BN_INPUTS = ("scale", "bias", "mean", "var")


def batchnorm(node: OnnxNode, shape: tuple[int, ...] | None) -> nn.Module:
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
            getattr(bn, name).copy_(f32(value))
    return bn.eval()


def avgpool(node: OnnxNode, shape: tuple[int, ...] | None) -> nn.Module:
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


def global_avgpool(node: OnnxNode, shape: tuple[int, ...] | None) -> nn.Module:
    """``GlobalAveragePool`` of a (C, H, W) value: an ``nn.AvgPool2d`` over all of H x W."""
    if shape is None or len(shape) != 3:
        shown = "unknown" if shape is None else str(("N", *shape))
        raise node.unsupported(f"an input of shape {shown}; only (N, C, H, W) of known size")
    return nn.AvgPool2d((shape[1], shape[2]))


def flatten(node: OnnxNode, shape: tuple[int, ...] | None) -> nn.Module:
    if node.attrs().get("axis", 1) != 1:
        raise node.unsupported("axis != 1")
    return nn.Flatten()


def check_cast(node: OnnxNode) -> None:
    """A Cast of a network value is run as the identity, so only a Cast to float32 is taken."""
    import onnx

    to = node.attrs().get("to")
    if to != onnx.TensorProto.FLOAT:
        raise node.unsupported(
            f"to {type_name(to)} changes values or precision; only a Cast to float32 (FLOAT) "
            "is exact"
        )


def check_dropout(node: OnnxNode) -> None:
    """A Dropout is run as the identity, so one in training mode is refused."""
    inputs = list(node.proto.input)
    if len(inputs) > 2 and inputs[2]:
        name = node.const_name(2, "training_mode")
        if np.asarray(node.consts[name]).any():
            raise node.unsupported("training_mode=True drops values at random")


def type_name(elem: Any) -> str:
    """The ONNX name of a tensor element type (``FLOAT``, ``INT32``), or its number."""
    import onnx

    try:
        return str(onnx.TensorProto.DataType.Name(elem))
    except (ValueError, TypeError):
        return f"type {elem!r}"


def const_op(node: OnnxNode, shape: tuple[int, ...] | None) -> nn.Module:
    """Add/Sub/Mul/Div of one network value and one float32 constant."""
    names = [x for x in node.proto.input if x in node.consts]
    if len(names) != 1 or len(node.proto.input) != 2:
        raise node.unsupported("only one network value and one constant")
    reverse = node.proto.input[0] == names[0]
    op = ELEMENTWISE[node.op]
    const = node.weight(0 if reverse else 1, "constant")
    if op == "div" and reverse:
        raise node.unsupported("constant / x is not affine; only division by a constant")
    if op == "div" and (const == 0).any():
        raise node.unsupported("division by a constant that contains 0")
    if shape is not None:
        rank = len(shape) + 1
        if const.ndim > rank or (const.ndim == rank and const.shape[0] != 1):
            raise node.unsupported(
                f"a constant of shape {const.shape} on values of shape {('N', *shape)}: it "
                "would broadcast over the batch dimension"
            )
    return ConstOp(op, f32(const), reverse)

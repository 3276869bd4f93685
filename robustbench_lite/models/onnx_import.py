"""``load_onnx_model(path)``: an ONNX network as a :class:`Model` (no onnx2torch).

Supported (one float32 data input, one output): Gemm, MatMul (+ Add of a constant), Conv,
Relu, Flatten, Reshape, BatchNormalization, AveragePool, GlobalAveragePool, Add/Sub/Mul/Div of
a network value and a constant (Div only by one), Add/Sub of two network values (residual
connections), Concat of network values (not along the batch dimension), and the identities
Identity, Dropout (not in training mode) and Cast to float32. The nodes may form any graph: a chain becomes an ``nn.Sequential``, branches an
:class:`~.onnx_modules.OnnxGraph` whose steps were fixed here, so ``torch.fx`` traces either and
the verifier lowers it exactly. Nodes on constants only are folded here (:mod:`.onnx_shapes`),
and the ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chains that ``torch.onnx.export``
writes for ``x.reshape(x.shape[0], -1)`` become a reshape that keeps the batch dimension.

Every node is converted exactly or refused:

- an operator outside the list, or one whose attributes make it something else (a ``Cast`` to
  an integer type, ``constant / x``, the product of two network values, a transposed ``Gemm``
  input, asymmetric padding, arithmetic on the batch size, ...) raises
  :class:`UnsupportedLayerError` ``unsupported: <op> (<why>) at node '<name>'``, so a verifier
  answers UNKNOWN with that reason and never analyses a different function;
- a network that is not float32 (a float64 input or weights, a float16 constant) is refused the
  same way: its float32 copy would compute different numbers (and get different answers);
- a malformed file (a 1-D ``Gemm`` weight, an ``AveragePool`` without ``kernel_shape``, NaN or
  infinite weights, shapes that do not fit, a tensor of more than ``RBL_MAX_TENSOR_ELEMENTS``
  elements per sample) raises :class:`CheckpointError`.

Shapes are followed through the graph on the ``meta`` device (nothing is allocated), so a
``Reshape`` to 10^12 elements or a huge declared input is refused before any work.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustbench_lite.core.errors import (
    CheckpointError,
    RobustbenchLiteError,
    UnsupportedLayerError,
    first_line,
)
from robustbench_lite.core.model import Model

from . import onnx_nodes as nodes
from .onnx_modules import Combine, Concat, ConstOp, OnnxGraph, Reshape, Step
from .onnx_nodes import ELEMENTWISE, OnnxNode, type_name
from .onnx_shapes import ShapeValue, fold, reshape_target, shape_of, shape_op

#: Inputs up to this many values per sample infer their output shape on real zeros.
_SMALL_INPUT = 1 << 16

__all__ = ["ConstOp", "Reshape", "OnnxGraph", "load_onnx_model", "max_elements"]

_IDENTITY_OPS = frozenset({"Identity", "Dropout"})
_SUPPORTED = (
    "Gemm, MatMul, Add, Sub, Mul, Div, Conv, Relu, Flatten, Reshape, BatchNormalization, "
    "AveragePool, GlobalAveragePool, Concat, Identity, Dropout, Cast (to float32), Constant; "
    "Shape, Gather, Slice, Unsqueeze, Squeeze and Concat on shapes"
)
#: Environment variable that raises the per-sample tensor size limit.
MAX_ELEMENTS_ENV = "RBL_MAX_TENSOR_ELEMENTS"
#: Default limit on the elements of any tensor of one sample (input or intermediate): 2^24,
#: 64 MB in float32 (a 3x224x224 image has 150528).
DEFAULT_MAX_ELEMENTS = 1 << 24

#: Ops taking network values (besides the converters below).
_NETWORK_OPS = frozenset(
    {"Shape", "Identity", "Dropout", "Cast", "Relu", "MatMul", "Reshape", "Concat"}
)
#: Converters of the nodes with one network value, their first input.
_CONVERTERS: dict[str, Callable[[OnnxNode, tuple[int, ...] | None], nn.Module]] = {
    "Gemm": nodes.gemm,
    "Conv": nodes.conv,
    "BatchNormalization": nodes.batchnorm,
    "AveragePool": nodes.avgpool,
    "GlobalAveragePool": nodes.global_avgpool,
    "Flatten": nodes.flatten,
}
_DATA_OPS = _NETWORK_OPS | set(_CONVERTERS) | set(ELEMENTWISE)


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


# --------------------------------------------------------------------------- the file


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """Initializers and ``Constant`` nodes by name, in their own dtypes; float ones finite."""
    consts: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        what = f"initializer {init.name!r}"
        consts[init.name] = _finite(_decode(_array, init, what), what)
    for proto in graph.node:
        if proto.op_type != "Constant":
            continue
        node = OnnxNode(proto, consts)
        if not proto.output or not proto.output[0]:
            raise node.malformed("it has no output")
        value = _decode(_constant_value, node, f"Constant {node.name!r}")
        consts[proto.output[0]] = _finite(value, f"Constant {node.name!r}")
    return consts


def _array(tensor: Any) -> np.ndarray:
    import onnx.numpy_helper as nh

    return np.asarray(nh.to_array(tensor))


def _constant_value(node: OnnxNode) -> np.ndarray:
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
                f"unsupported: a {type_name(elem)} network ({role} "
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


# --------------------------------------------------------------------------- the graph


class _Walk:
    """Converts the nodes in their (topological) order into steps on network values.

    Every ONNX value is one of: a network value (computed from the input; its per-sample shape
    is followed on the ``meta`` device), a constant (``consts``, folded here), or a
    :class:`ShapeValue` (an integer vector holding the batch size).
    """

    def __init__(
        self,
        graph: Any,
        consts: dict[str, np.ndarray],
        data_input: str,
        input_shape: tuple[int, ...] | None,
        batch: int,
        source: str,
    ) -> None:
        self.graph = graph
        self.batch = batch  # the declared batch size, or 1
        self.consts = consts
        self.data_input = data_input
        self.limit = max_elements()
        self.source = source
        self.shapes: dict[str, tuple[int, ...] | None] = {data_input: input_shape}
        self.alias: dict[str, str] = {}
        self.syms: dict[str, ShapeValue] = {}
        self.extra: dict[str, str] = {}  # a node's second outputs, which nothing may use
        self.steps: list[tuple[OnnxNode, nn.Module, tuple[str, ...], str]] = []
        self.fused: set[int] = set()
        self.users: dict[str, list[int]] = {}  # value -> the nodes (indices) that read it
        for index, proto in enumerate(graph.node):
            for name in proto.input:
                self.users.setdefault(name, []).append(index)
        if input_shape is not None:
            self._check_size(input_shape, "the network input")

    # ------------------------------------------------------------------ values

    def _kind(self, node: OnnxNode, name: str) -> str | None:
        if not name:
            return None
        if name in self.alias or name in self.shapes:
            return "data"
        if name in self.syms:
            return "shape"
        if name in self.consts:
            return "const"
        if name in self.extra:
            raise node.unsupported(
                f"its input {name!r} is an extra output of node {self.extra[name]!r}; only "
                "first outputs are run"
            )
        raise node.malformed(
            f"its input {name!r} is computed by no earlier node (the nodes must be in "
            "topological order)"
        )

    def _data(self, name: str) -> str:
        return self.alias.get(name, name)

    def _check_size(self, shape: tuple[int, ...], what: str) -> None:
        n = math.prod(shape)
        if n > self.limit:
            raise CheckpointError(
                f"{self.source}: {what} has shape {shape} ({n} elements per sample), over the "
                f"limit of {self.limit}; raise it with {MAX_ELEMENTS_ENV}=N if this is intended"
            )

    def _define(self, node: OnnxNode, name: str) -> None:
        known = (self.alias, self.shapes, self.syms, self.extra)
        if any(name in d for d in known) or name == self.data_input:
            raise node.malformed(f"it computes {name!r} again (ONNX values are assigned once)")

    # ------------------------------------------------------------------ nodes

    def run(self) -> None:
        for index, proto in enumerate(self.graph.node):
            if proto.op_type == "Constant" or index in self.fused:
                continue
            node = OnnxNode(proto, self.consts)
            if proto.domain not in ("", "ai.onnx"):
                raise node.unsupported(f"operator domain {proto.domain!r}; only the ONNX standard")
            if not proto.output or not proto.output[0]:
                raise node.malformed("it has no output")
            self._define(node, proto.output[0])
            for extra in proto.output[1:]:
                if extra:
                    self.extra[extra] = node.name
            kinds = [self._kind(node, name) for name in proto.input]
            try:
                if "data" in kinds:
                    self._network_node(node, kinds)
                elif "shape" in kinds:
                    args = [self._arg(name) for name in proto.input]
                    self._store(node, shape_op(node, args))
                else:
                    args_c = [self.consts[name] if name else None for name in proto.input]
                    self._store(node, np.asarray(fold(node, args_c)))
            except RobustbenchLiteError:
                raise
            except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as exc:
                raise node.malformed(f"{type(exc).__name__}: {str(exc)[:300]}") from None

    def _arg(self, name: str) -> ShapeValue | np.ndarray | None:
        if not name:
            return None
        return self.syms[name] if name in self.syms else self.consts[name]

    def _store(self, node: OnnxNode, value: ShapeValue | np.ndarray) -> None:
        out = node.proto.output[0]
        if isinstance(value, ShapeValue):
            self.syms[out] = value
        else:
            self.consts[out] = _finite(value, f"value {out!r} folded from node {node.name!r}")

    def _network_node(self, node: OnnxNode, kinds: list[str | None]) -> None:
        """A node with at least one network value among its inputs."""
        op, proto = node.op, node.proto
        inputs = [self._data(n) if k == "data" else n for n, k in zip(proto.input, kinds)]
        data = [n for n, k in zip(inputs, kinds) if k == "data"]
        if op not in _DATA_OPS:
            raise node.unsupported(f"no exact conversion; supported: {_SUPPORTED}")
        if "shape" in kinds and op != "Reshape":
            raise node.unsupported(
                "a value computed by Shape used as data; only a Reshape takes a shape"
            )
        if kinds[0] != "data" and op not in ELEMENTWISE and op not in ("MatMul", "Concat"):
            raise node.unsupported(
                f"its first input {proto.input[0]!r} is not a network value; the network value "
                "must come first"
            )
        shape = self.shapes[data[0]]
        out = proto.output[0]
        if op == "Shape":
            if shape is None:
                raise node.unsupported(
                    "the input shape is unknown; declare the network input's dims"
                )
            self._store(node, shape_of(node, shape))
        elif op in _IDENTITY_OPS or op == "Cast":
            if op == "Cast":
                nodes.check_cast(node)
            if op == "Dropout":
                nodes.check_dropout(node)
            self.alias[out] = data[0]
        elif op == "Relu":
            self._step(node, nn.ReLU(), (data[0],))
        elif op == "MatMul":
            self._matmul(node, kinds, inputs)
        elif op in _CONVERTERS:
            self._one_value(node, data)
            self._step(node, _CONVERTERS[op](node, shape), (data[0],))
        elif op == "Reshape":
            self._one_value(node, data)
            self._reshape(node, inputs, kinds, shape)
        elif op in ELEMENTWISE:
            if len(data) == 1 and len(proto.input) == 2:
                self._step(node, nodes.const_op(node, shape), (data[0],))
            else:
                self._combine(node, inputs, kinds)
        else:  # Concat
            self._concat(node, inputs, kinds)

    def _one_value(self, node: OnnxNode, data: list[str]) -> None:
        if len(data) != 1:
            raise node.unsupported(
                f"{len(data)} network values among its inputs; only the first input may be one"
            )

    def _matmul(self, node: OnnxNode, kinds: list[str | None], inputs: list[str]) -> None:
        """``x @ W``; an ``Add`` of a bias vector that is the only reader of the product is
        fused into the same ``nn.Linear``."""
        if kinds[0] != "data":
            raise node.unsupported("a constant times x; only x times a constant")
        if len(kinds) > 1 and kinds[1] == "data":
            raise node.unsupported(
                "a product of two network values is not affine; only x times a constant"
            )
        out = str(node.proto.output[0])
        bias, users = None, self.users.get(out, [])
        outputs = {o.name for o in self.graph.output}
        add = self.graph.node[users[0]] if len(users) == 1 else None
        if add is not None and add.op_type == "Add" and out not in outputs:
            other = [x for x in add.input if x != out]
            bias_shape = self.consts[other[0]].shape if other and other[0] in self.consts else None
            vector = bias_shape is not None and (len(bias_shape) < 2 or bias_shape[:-1] == (1,))
            if len(add.input) == 2 and len(other) == 1 and vector:
                add_node = OnnxNode(add, self.consts)
                bias = add_node.weight(list(add.input).index(other[0]), "bias")
                self._define(add_node, add.output[0])
                self.fused.add(users[0])
                out = str(add.output[0])
        self._step(node, nodes.matmul(node, bias), (inputs[0],), out)

    def _reshape(
        self,
        node: OnnxNode,
        inputs: list[str],
        kinds: list[str | None],
        shape: tuple[int, ...] | None,
    ) -> None:
        if len(inputs) < 2 or not inputs[1]:
            raise node.malformed("its shape (input 1) is missing")
        if kinds[1] == "shape":
            sym = self.syms[inputs[1]]
            if sym.scalar:
                raise node.malformed("its shape is a scalar, not a vector")
            target: list[int | None] = list(sym.items)
        else:
            target = [int(s) for s in node.integers(1, "shape").reshape(-1)]
        if shape is None:
            raise node.unsupported("the input shape is unknown; declare the network input's dims")
        self._step(node, Reshape(reshape_target(node, target, shape, self.batch)), (inputs[0],))

    def _same_rank(self, node: OnnxNode, data: list[str]) -> list[tuple[int, ...]]:
        shapes = [self.shapes[n] for n in data]
        known = [s for s in shapes if s is not None]
        if len(known) != len(shapes):
            raise node.unsupported("the input shape is unknown; declare the network input's dims")
        if len({len(s) for s in known}) != 1:
            raise node.unsupported(
                f"network values of shapes {[('N', *s) for s in known]}: they must have one "
                "rank, or the batch dimension would be broadcast"
            )
        return known

    def _combine(self, node: OnnxNode, inputs: list[str], kinds: list[str | None]) -> None:
        if len(inputs) != 2 or kinds != ["data", "data"]:
            raise node.malformed(f"{len(inputs)} inputs; {node.op} takes two")
        op = ELEMENTWISE[node.op]
        if op in ("mul", "div"):
            what = "a product" if op == "mul" else "a quotient"
            raise node.unsupported(
                f"{what} of two network values is not affine; only one network value and one "
                "constant"
            )
        self._same_rank(node, inputs)
        self._step(node, Combine(op), (inputs[0], inputs[1]))

    def _concat(self, node: OnnxNode, inputs: list[str], kinds: list[str | None]) -> None:
        if any(k != "data" for k in kinds):
            raise node.unsupported(
                "a constant among network values; only network values are concatenated"
            )
        rank = len(self._same_rank(node, inputs)[0]) + 1
        if "axis" not in node.attrs():
            raise node.malformed("axis is required")
        axis = int(node.attrs()["axis"])
        dim = axis + rank if axis < 0 else axis
        if not 0 <= dim < rank:
            raise node.malformed(f"axis {axis} for values of rank {rank}")
        if dim == 0:
            raise node.unsupported("axis 0 is the batch dimension; only per-sample axes")
        self._step(node, Concat(dim), tuple(inputs))

    def _step(
        self, node: OnnxNode, layer: nn.Module, inputs: tuple[str, ...], out: str = ""
    ) -> None:
        """Add ``layer`` on ``inputs``, computing ``out`` (by default the node's output);
        follow the shape on the ``meta`` device."""
        out = out or str(node.proto.output[0])
        self.shapes[out] = self._infer(layer, node, [self.shapes[n] for n in inputs])
        self.steps.append((node, layer, inputs, out))

    def _infer(
        self, layer: nn.Module, node: OnnxNode, shapes: list[tuple[int, ...] | None]
    ) -> tuple[int, ...] | None:
        known = [s for s in shapes if s is not None]
        if len(known) != len(shapes):
            return None
        from torch.func import functional_call

        tensors = list(layer.named_parameters()) + list(layer.named_buffers())
        # The layer's own code on zeros gives the shape; a large input runs on meta copies
        # instead (shapes only, no data); small ones skip the meta device's slow first use.
        small = all(math.prod(s) <= _SMALL_INPUT for s in known)
        device = "cpu" if small else "meta"
        try:
            with torch.no_grad():
                out = functional_call(
                    layer,
                    {name: t.to(device) for name, t in tensors},
                    tuple(torch.zeros((2, *s), device=device) for s in known),
                )
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            first = first_line(exc)
            shown = known[0] if len(known) == 1 else known
            raise node.malformed(
                f"it does not run on its input of shape {shown}: {first[:300]}"
            ) from None
        if out.ndim == 0 or out.shape[0] != 2:
            raise node.unsupported("it changes the batch dimension")
        shape = tuple(int(s) for s in out.shape[1:])
        self._check_size(shape, f"the output of node {node.name!r} ({node.op})")
        return shape

    # ------------------------------------------------------------------ the network

    def network(self) -> nn.Module:
        """An ``nn.Sequential`` for a chain, else an :class:`OnnxGraph`."""
        output = self.graph.output[0].name
        if output in self.consts or output in self.syms:
            raise UnsupportedLayerError(
                f"unsupported: the graph output {output!r} (it does not depend on the "
                "network input) at the graph outputs"
            )
        if not (output in self.alias or output in self.shapes):
            raise CheckpointError(
                f"{self.source}: the graph output {output!r} is computed by no node"
            )
        final = self._data(output)
        needed = {final}
        for node, _, inputs, out in reversed(self.steps):
            if out not in needed:
                raise UnsupportedLayerError(
                    f"unsupported: the graph output {output!r} (it is not the end of the chain: "
                    f"node {node.name!r} ({node.op}) computes {out!r}, which the output does "
                    "not use) at the graph outputs"
                )
            needed.update(inputs)
        previous = self.data_input
        chain = True
        for _, _, inputs, out in self.steps:
            chain = chain and inputs == (previous,)
            previous = out
        if chain and previous == final:
            return nn.Sequential(*[layer for _, layer, _, _ in self.steps])
        return self._graph(final)

    def _graph(self, final: str) -> OnnxGraph:
        last_use: dict[str, int] = {}
        for i, (_, _, inputs, _) in enumerate(self.steps):
            for name in inputs:
                last_use[name] = i
        layers = nn.ModuleDict()
        steps = []
        for i, (node, layer, inputs, out) in enumerate(self.steps):
            key = re.sub(r"\W+", "_", node.name).strip("_") or node.op.lower()
            if key in layers or hasattr(layers, key):
                key = f"{key}_{i}"
            layers[key] = layer
            drop = tuple(sorted({n for n in inputs if last_use[n] == i and n != final}))
            steps.append(Step(key, inputs, out, drop))
        return OnnxGraph(layers, tuple(steps), self.data_input, final)


def load_onnx_model(path: str | Path, **kw: Any) -> Model:
    """Convert the ONNX network at ``path`` into a :class:`Model` (float32 torch layers).

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
    batch = int(dims[0]) if input_shape is not None and dims[0] > 0 else 1
    walk = _Walk(graph, consts, inputs[0].name, input_shape, batch, str(path))
    walk.run()
    net = walk.network()
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

"""A conv-native view of a plain layer chain: the blocks between ReLUs as torch ops, never dense.

The exact lowering (``verify/trace.py`` -> :class:`~.layers.Network`) turns every affine block
into a dense matrix; for a convolutional network that matrix is large (cifar ``base_kw``: a
2048 x 3072 block) and back-substitution through it dominates the run time. For networks that
are a plain chain (any module whose torch.fx graph applies one layer after the other, e.g.
``nn.Sequential``) of ``Linear``, ``Conv2d``, ``AvgPool2d`` (as a fixed convolution),
``Flatten``, ``Reshape``, ``BatchNorm1d/2d`` (eval, folded to a per-channel scale and shift),
elementwise add/sub/mul/div by a constant, ``Identity``/``Dropout`` and ``ReLU`` (after the
model's own mean/std normalisation), :func:`conv_chain` keeps each block as its torch ops so
that bounds go back through a convolution as a transposed convolution
(:mod:`robustbench_lite.verify.crown`).

Exact-or-refused is kept: the dense :class:`~.layers.Network` stays the definition of the
function, and every block of the chain is checked against its dense matrix with Freivalds'
randomised test (two Gaussian vectors per block; two different affine maps agree on a
continuous random vector with probability 0). Anything outside the list, or a block that fails
the check, gives ``None`` and the caller keeps the dense path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lite.core.model import Model

from .bounds import ABS_SLACK, REL_SLACK
from .layers import Network

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Op:
    """One affine op on per-sample tensors ``in_shape -> out_shape`` (float64).

    ``kind``: ``linear`` (weight (m, n), bias (m,)), ``conv`` (weight (C_out, C_in, kh, kw),
    bias (C_out,), ``stride``, ``padding``), ``reshape``, ``scale`` (``x * weight + bias``,
    both broadcast to ``in_shape``).
    """

    kind: str
    in_shape: Shape
    out_shape: Shape
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, *in_shape) -> (M, *out_shape)."""
        if self.kind == "linear":
            assert self.weight is not None and self.bias is not None
            return x @ self.weight.T + self.bias
        if self.kind == "conv":
            assert self.weight is not None
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        if self.kind == "reshape":
            return x.reshape((x.shape[0],) + self.out_shape)
        assert self.weight is not None and self.bias is not None
        return x * self.weight + self.bias

    def abs_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``|op|`` without bias: x (M, *in_shape) >= 0 -> (M, *out_shape), for intervals."""
        if self.kind == "linear":
            assert self.weight is not None
            return x @ self.weight.abs().T
        if self.kind == "conv":
            assert self.weight is not None
            return F.conv2d(x, self.weight.abs(), None, self.stride, self.padding)
        if self.kind == "reshape":
            return x.reshape((x.shape[0],) + self.out_shape)
        assert self.weight is not None
        return x * self.weight.abs()

    def abs_bias(self) -> torch.Tensor | float:
        """|bias| broadcastable to (M, *out_shape)."""
        if self.bias is None:
            return 0.0
        if self.kind == "conv":
            return self.bias.abs().reshape(-1, 1, 1)
        return self.bias.abs()

    def backward(
        self, A: torch.Tensor, magnitude: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Coefficients A (M, *out_shape) of ``A . op(x)`` -> (A' (M, *in_shape), A.bias (M,),
        |A|.|bias| (M,)) with ``A . op(x) = A' . x + A.bias``; ``magnitude=False`` returns
        zeros for the third (when no sound slack is needed, e.g. inside the optimiser)."""
        M = A.shape[0]
        zero = torch.zeros(M, dtype=A.dtype, device=A.device)
        if self.kind == "reshape":
            return A.reshape((M,) + self.in_shape), zero, zero
        assert self.weight is not None and self.bias is not None
        if self.kind == "linear":
            return (
                A @ self.weight,
                A @ self.bias,
                (A.abs() @ self.bias.abs() if magnitude else zero),
            )
        if self.kind == "conv":
            kh, kw = self.weight.shape[2:]
            out_pad = tuple(
                self.in_shape[1 + i]
                - ((self.out_shape[1 + i] - 1) * self.stride[i] - 2 * self.padding[i] + k)
                for i, k in enumerate((kh, kw))
            )
            Ain = F.conv_transpose2d(
                A, self.weight, None, self.stride, self.padding, output_padding=out_pad
            )
            per_channel = A.sum(dim=(2, 3))
            if not magnitude:
                return Ain, per_channel @ self.bias, zero
            per_abs = A.abs().sum(dim=(2, 3))
            return Ain, per_channel @ self.bias, per_abs @ self.bias.abs()
        w = self.weight.expand(self.in_shape)
        b = self.bias.expand(self.in_shape)
        flat = A.reshape(M, -1)
        return (
            A * w,
            flat @ b.reshape(-1),
            (flat.abs() @ b.reshape(-1).abs() if magnitude else zero),
        )

    def to(self, device: torch.device | str | torch.dtype) -> Op:
        """This op with its tensors moved to a device or cast to a dtype."""
        return Op(
            self.kind,
            self.in_shape,
            self.out_shape,
            None if self.weight is None else self.weight.to(device),
            None if self.bias is None else self.bias.to(device),
            self.stride,
            self.padding,
        )


@dataclass(frozen=True)
class ConvChain:
    """Blocks ``B_0, ReLU, B_1, ..., ReLU, B_L``; block ``k`` maps ``shapes[k]`` to ``shapes[k+1]``
    (per-sample shapes; ``shapes[0]`` is the input shape). Same function as the dense
    :class:`~.layers.Network` it was checked against."""

    blocks: tuple[tuple[Op, ...], ...]
    shapes: tuple[Shape, ...]

    @property
    def n_relu_layers(self) -> int:
        return len(self.blocks) - 1

    def sizes(self) -> list[int]:
        """Neurons per ReLU layer."""
        return [math.prod(s) for s in self.shapes[1:-1]]

    def block_forward(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """x (M, *shapes[k]) -> (M, *shapes[k+1])."""
        for op in self.blocks[k]:
            x = op.forward(x)
        return x

    def block_backward(
        self, k: int, A: torch.Tensor, magnitude: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A (M, *shapes[k+1]) -> (A' (M, *shapes[k]), bias term (M,), its magnitude (M,);
        zeros when ``magnitude`` is False)."""
        c = torch.zeros(A.shape[0], dtype=A.dtype, device=A.device)
        cabs = torch.zeros_like(c)
        for op in reversed(self.blocks[k]):
            A, cb, cba = op.backward(A, magnitude)
            c, cabs = c + cb, cabs + cba
        return A, c, cabs

    def block_intervals(
        self, k: int, lo: torch.Tensor, hi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Interval bounds (widened outward) of block ``k`` on boxes (M, *shapes[k])."""
        mid, rad, mag = (lo + hi) / 2, (hi - lo) / 2, torch.maximum(lo.abs(), hi.abs())
        for op in self.blocks[k]:
            mid, rad = op.forward(mid), op.abs_forward(rad)
            mag = op.abs_forward(mag) + op.abs_bias()
        slack = REL_SLACK * mag + ABS_SLACK
        return mid - rad - slack, mid + rad + slack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Flat inputs (M, n_in) -> flat outputs (M, n_out)."""
        a = x.reshape((x.shape[0],) + self.shapes[0])
        for k in range(len(self.blocks)):
            a = self.block_forward(k, a)
            if k < self.n_relu_layers:
                a = torch.relu(a)
        return a.reshape(x.shape[0], -1)

    def to(self, device: torch.device | str) -> ConvChain:
        return ConvChain(tuple(tuple(op.to(device) for op in b) for b in self.blocks), self.shapes)

    def cast(self, dtype: torch.dtype) -> ConvChain:
        return ConvChain(tuple(tuple(op.to(dtype) for op in b) for b in self.blocks), self.shapes)


_RELU_FUNCS = (torch.relu, F.relu)


def _chain_modules(net: nn.Module) -> list[nn.Module] | None:
    """The modules ``net`` applies one after the other, or None when it is not a plain chain.

    The network is traced with torch.fx (``verify/trace.py``'s tracer: user modules and
    containers are traced into); every node must take the previous node as its only network
    value, and the previous node must have no other user. ReLU functions and ``flatten(x, 1)``
    become ``nn.ReLU`` / ``nn.Flatten``; any other node means: not a plain chain.
    """
    from robustbench_lite.core.errors import UnsupportedLayerError

    from .trace import trace

    try:
        gm = trace(net)
    except UnsupportedLayerError:
        return None
    modules = dict(gm.named_modules())
    out: list[nn.Module] = []
    prev = None
    # nodes reading the batch size of ``prev``: "shape" (x.shape, x.size()) or "n" (its [0])
    batch: dict[Any, str] = {}
    seen: set[Any] = set()  # the chain's nodes so far (all have the same batch size)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if prev is not None:
                return None
            prev = node
            seen.add(node)
            continue
        kind = _batch_size_kind(node, seen, batch)
        if kind is not None:
            batch[node] = kind
            continue
        values = [a for a in node.all_input_nodes if a not in batch]
        users = [u for u in prev.users if _batch_size_kind(u, {prev}, {}) is None] if prev else []
        if prev is None or values != [prev] or len(users) != 1:
            return None
        args, kwargs = node.args, node.kwargs
        if node.op == "call_method" and node.target in ("reshape", "view") and not kwargs:
            shape = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            if len(shape) == 2 and batch.get(shape[0]) == "n" and shape[1] == -1:
                out.append(nn.Flatten())  # x.reshape(x.shape[0], -1): flatten(x, 1)
                prev = node
                seen.add(node)
                continue
            return None
        if node.op == "output":
            return out if args and args[0] is prev else None
        if node.op == "call_module" and not kwargs and len(args) == 1:
            out.append(modules[str(node.target)])
        elif node.op == "call_function" and node.target in _RELU_FUNCS and len(args) == 1:
            if kwargs.get("inplace", False) not in (False, True):
                return None
            out.append(nn.ReLU())
        elif node.op == "call_method" and node.target in ("relu", "relu_") and len(args) == 1:
            out.append(nn.ReLU())
        elif (
            (
                (node.op == "call_function" and node.target is torch.flatten)
                or (node.op == "call_method" and node.target == "flatten")
            )
            and tuple(args[1:]) == (1,)
            and not kwargs
        ):
            out.append(nn.Flatten())
        else:
            return None
        prev = node
        seen.add(node)
    return None


def _batch_size_kind(node: Any, seen: set[Any], batch: dict[Any, str]) -> str | None:
    """``"shape"`` when ``node`` is ``x.shape`` or ``x.size()`` of a node ``x`` in ``seen``,
    ``"n"`` when it is the batch size (``x.size(0)`` or ``[0]`` of a shape node), else None:
    nothing else of a shape may be read in a plain chain."""
    import operator

    args = node.args
    if node.op == "call_function" and node.target is getattr:
        return "shape" if len(args) == 2 and args[0] in seen and args[1] == "shape" else None
    if node.op == "call_method" and node.target == "size" and not node.kwargs and args[0] in seen:
        if len(args) == 1:
            return "shape"
        return "n" if len(args) == 2 and args[1] == 0 else None
    if node.op == "call_function" and node.target is operator.getitem and not node.kwargs:
        return "n" if batch.get(args[0]) == "shape" and args[1] == 0 else None
    return None


def _t(v: torch.Tensor) -> torch.Tensor:
    return v.detach().to("cpu", torch.float64).clone()


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _op_of(mod: nn.Module, shape: Shape) -> list[Op] | None:
    """The ops of one module on per-sample ``shape``, or None when it is not in the list."""
    from robustbench_lite.models.onnx_modules import ConstOp, Reshape

    kind = type(mod)
    if kind in (nn.Identity, nn.Dropout):
        return []
    if kind is nn.Linear and len(shape) == 1:
        assert isinstance(mod, nn.Linear)
        bias = mod.bias if mod.bias is not None else torch.zeros(mod.out_features)
        return [Op("linear", shape, (mod.out_features,), _t(mod.weight), _t(bias))]
    if kind is nn.Conv2d and len(shape) == 3:
        assert isinstance(mod, nn.Conv2d)
        if (
            mod.groups != 1
            or tuple(mod.dilation) != (1, 1)
            or mod.padding_mode != "zeros"
            or isinstance(mod.padding, str)
        ):
            return None
        stride = (int(mod.stride[0]), int(mod.stride[1]))
        pad = (int(mod.padding[0]), int(mod.padding[1]))
        kh, kw = mod.kernel_size
        out = (
            mod.out_channels,
            (shape[1] + 2 * pad[0] - kh) // stride[0] + 1,
            (shape[2] + 2 * pad[1] - kw) // stride[1] + 1,
        )
        cbias = mod.bias if mod.bias is not None else torch.zeros(mod.out_channels)
        return [Op("conv", shape, out, _t(mod.weight), _t(cbias), stride, pad)]
    if kind is nn.AvgPool2d and len(shape) == 3:
        assert isinstance(mod, nn.AvgPool2d)
        k = _pair(mod.kernel_size)
        st = _pair(mod.stride if mod.stride is not None else mod.kernel_size)
        pad = _pair(mod.padding)
        if mod.ceil_mode or not mod.count_include_pad or mod.divisor_override is not None:
            return None
        c = shape[0]
        w = torch.zeros(c, c, k[0], k[1], dtype=torch.float64)
        w[torch.arange(c), torch.arange(c)] = 1.0 / (k[0] * k[1])
        out = (
            c,
            (shape[1] + 2 * pad[0] - k[0]) // st[0] + 1,
            (shape[2] + 2 * pad[1] - k[1]) // st[1] + 1,
        )
        return [Op("conv", shape, out, w, torch.zeros(c, dtype=torch.float64), st, pad)]
    if kind is nn.Flatten:
        assert isinstance(mod, nn.Flatten)
        if mod.start_dim != 1 or mod.end_dim != -1:
            return None
        return [Op("reshape", shape, (math.prod(shape),))]
    if kind is Reshape:
        assert isinstance(mod, Reshape)
        if math.prod(mod.shape) != math.prod(shape):
            return None
        return [Op("reshape", shape, tuple(mod.shape))]
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        assert isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d))
        if mod.running_mean is None or mod.running_var is None:
            return None
        var, mean = _t(mod.running_var), _t(mod.running_mean)
        w = _t(mod.weight) if mod.weight is not None else torch.ones_like(mean)
        b = _t(mod.bias) if mod.bias is not None else torch.zeros_like(mean)
        s = w / torch.sqrt(var + mod.eps)
        view = (-1,) + (1,) * (len(shape) - 1)
        return [Op("scale", shape, shape, s.reshape(view), (b - mean * s).reshape(view))]
    if kind is ConstOp:
        assert isinstance(mod, ConstOp)
        const = _t(mod.const)
        try:
            full = torch.broadcast_to(const, shape) if const.dim() <= len(shape) else None
        except RuntimeError:
            return None
        if full is None:
            return None
        one = torch.ones(shape, dtype=torch.float64)
        zero = torch.zeros(shape, dtype=torch.float64)
        table = {
            ("add", False): (one, full),
            ("add", True): (one, full),
            ("sub", False): (one, -full),
            ("sub", True): (-one, full),
            ("mul", False): (full, zero),
            ("mul", True): (full, zero),
            ("div", False): (1.0 / full, zero),
        }
        if (mod.op, mod.reverse) not in table:
            return None
        w, b = table[(mod.op, mod.reverse)]
        return [Op("scale", shape, shape, w, b)]
    return None


def conv_chain(model: Model, net: Network, *, seed: int = 0) -> ConvChain | None:
    """The conv-native chain of ``model`` checked against its exact lowering ``net``, or None."""
    if model.input_shape is None:
        return None
    mods = _chain_modules(model.net)
    if mods is None:
        return None
    shape: Shape = tuple(int(s) for s in model.input_shape)
    ops: list[Op] = []
    if model.mean is not None and model.std is not None:
        view = (len(model.mean),) + (1,) * (len(shape) - 1)
        mean = torch.tensor(np.asarray(model.mean, dtype=np.float64)).reshape(view)
        std = torch.tensor(np.asarray(model.std, dtype=np.float64)).reshape(view)
        ops.append(Op("scale", shape, shape, 1.0 / std, -mean / std))
    blocks: list[tuple[Op, ...]] = []
    shapes: list[Shape] = [shape]
    for mod in mods:
        if type(mod) is nn.ReLU:
            blocks.append(tuple(ops))
            shapes.append(shape)
            ops = []
            continue
        new = _op_of(mod, shape)
        if new is None:
            return None
        for op in new:
            ops.append(op)
            shape = op.out_shape
    blocks.append(tuple(ops))
    shapes.append(shape)
    chain = ConvChain(tuple(blocks), tuple(shapes))
    return chain if _freivalds(chain, net, seed) else None


def _freivalds(chain: ConvChain, net: Network, seed: int) -> bool:
    """Each block equals the dense layer it replaces on two random Gaussian vectors."""
    if len(chain.blocks) != len(net.weights):
        return False
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, (W, b) in enumerate(zip(net.weights, net.biases)):
            if W.shape != (math.prod(chain.shapes[k + 1]), math.prod(chain.shapes[k])):
                return False
            v = torch.randn((2,) + chain.shapes[k], generator=gen, dtype=torch.float64)
            got = chain.block_forward(k, v).reshape(2, -1).numpy()
            flat = v.reshape(2, -1).numpy()
            want = flat @ W.T + b
            scale = np.abs(flat) @ np.abs(W).T + np.abs(b)
            if not (np.abs(got - want) <= 1e-9 * scale + 1e-12).all():
                return False
    return True

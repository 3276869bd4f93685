"""Exact lowering of any torch module (a DAG of supported ops) to the verifier's chain.

The module is traced with ``torch.fx``; every node is lowered exactly or the whole network is
refused with one line, ``unsupported: <op> (<why>) at <node>``. Dispatch is on exact module
types and on function identities, never through the class hierarchy: a subclass of ``nn.ReLU``
with its own ``forward`` is traced into, and its ops are judged one by one.

Every tensor value is kept as an affine expression ``M z + c`` of the current chain vector
``z`` (the input, or the output of the last ReLU layer). Affine nodes (linear layers,
convolutions, batch norm in eval mode, average pooling, reshapes, concatenation, indexing, and
add/sub/mul/div where the operand roles keep the map affine) compose into the expressions;
their matrices are read exactly in float64 by pushing basis columns through the op itself.
A ReLU node closes a layer: the pre-activations are the ReLU's argument plus every value still
needed later, each passed through exactly (``u = relu(u) - relu(-u)``, or ``relu(u)`` alone for
a value known to be >= 0). So residual connections, branches and concatenations become the
same alternating chain ``A_0, ReLU, A_1, ..., A_L`` that the bounds and z3 encoders know; a
plain chain gives exactly the chain of before (nothing passes through).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from robustbench_lite.core.errors import UnsupportedLayerError, first_line

#: Module types lowered as one node (exact type match); every other torch.nn module is a leaf
#: that is refused by name, and user modules are traced into.
AFFINE_MODULES: frozenset[type] = frozenset(
    {
        nn.Linear,
        nn.Conv1d,
        nn.Conv2d,
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.AvgPool1d,
        nn.AvgPool2d,
        nn.Flatten,
        nn.Unflatten,
        nn.Identity,
        nn.Dropout,
    }
)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_ADD = {operator.add, torch.add, operator.iadd}
_SUB = {operator.sub, torch.sub, operator.isub}
_MUL = {operator.mul, torch.mul, operator.imul}
_DIV = {operator.truediv, torch.div, torch.true_divide, operator.itruediv}
_RELU_FUNCS = {torch.relu, F.relu, torch.relu_}
#: Functions that only move values around (reshape, permute, index): they keep a value >= 0.
_MOVES = {
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.permute,
    torch.transpose,
    operator.getitem,
}
#: Functions that are affine in their first tensor argument, all other arguments constant.
_AFFINE_IN_FIRST = _MOVES | {
    operator.neg,
    torch.neg,
    F.linear,
    F.conv1d,
    F.conv2d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.batch_norm,
}
#: Functions affine in all their tensor arguments jointly.
_JOINT = {torch.cat, torch.concat}
_SHAPE_ONLY_METHODS = {
    "view",
    "reshape",
    "flatten",
    "contiguous",
    "permute",
    "transpose",
    "squeeze",
    "unsqueeze",
    "__getitem__",
}
_SHAPE_ONLY_FUNCS = _MOVES | _JOINT
_METHOD_FUNCS: dict[str, set[Any]] = {
    "add": _ADD,
    "sub": _SUB,
    "mul": _MUL,
    "div": _DIV,
    "neg": {operator.neg},
}
_CHUNK = 512


class _Batch:
    """The batch size of a traced tensor (``x.shape[0]``): substituted when an op is run."""

    def __repr__(self) -> str:
        return "BATCH"


BATCH = _Batch()


@dataclass
class Expr:
    """A tensor value ``M z + c`` of one sample, shaped ``shape`` (batch dimension excluded).

    ``M`` (m, n_z) and ``c`` (m,) are float64; ``nonneg`` says the value is >= 0 everywhere
    (a ReLU output, or a reshape of one), so that it passes a ReLU layer with one row.
    """

    M: np.ndarray
    c: np.ndarray
    shape: tuple[int, ...]
    nonneg: bool = False


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in AFFINE_MODULES or type(m) is nn.ReLU:
            return True
        if isinstance(m, _CONTAINERS) and type(m) in _CONTAINERS:
            return False
        return m.__module__.startswith("torch.nn")  # MaxPool2d, Sigmoid, ...: refused by name


def trace(module: nn.Module) -> fx.GraphModule:
    """The fx graph of ``module``; a module that cannot be traced is refused."""
    try:
        graph = _Tracer().trace(module)
    except Exception as exc:  # fx raises many types for untraceable Python
        first = first_line(exc)
        raise UnsupportedLayerError(
            f"unsupported: {type(module).__name__} (its forward cannot be traced with torch.fx: "
            f"{first}) at <root>"
        ) from None
    return fx.GraphModule(module, graph)


def refuse(node: fx.Node, what: str, why: str) -> UnsupportedLayerError:
    """The one-line refusal ``unsupported: <op> (<why>) at <node>``."""
    return UnsupportedLayerError(f"unsupported: {what} ({why}) at {node.name}")


def lower_graph(
    gm: fx.GraphModule, start: Expr
) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], Expr]:
    """Lower ``gm`` applied to the value ``start``.

    Returns the ReLU layers as ``(W, b, name)`` pre-activation maps, in order (each followed by
    an elementwise ReLU), and the output expression in the last layer's output vector.
    """
    nodes = list(gm.graph.nodes)
    last_use = {n: max((nodes.index(u) for u in n.users), default=-1) for n in nodes}
    values: dict[fx.Node, Any] = {}
    layers: list[tuple[np.ndarray, np.ndarray, str]] = []
    modules = dict(gm.named_modules())
    for idx, node in enumerate(nodes):
        if node.op == "placeholder":
            if values:
                raise refuse(node, "a second input", "the verifier takes one input tensor")
            values[node] = start
        elif node.op == "get_attr":
            values[node] = _attr(gm, str(node.target)).detach().double()
        elif node.op == "output":
            out = values[node.args[0]] if isinstance(node.args[0], fx.Node) else None
            if not isinstance(out, Expr):
                raise refuse(node, "the output", "the network must return one tensor")
            return layers, out
        elif _is_relu(node, modules):
            arg = values[node.args[0]] if isinstance(node.args[0], fx.Node) else None
            if isinstance(arg, torch.Tensor):
                values[node] = torch.relu(arg)
            elif not isinstance(arg, Expr):
                raise refuse(node, "relu", "its argument is not a tensor")
            elif arg.nonneg:
                values[node] = arg
            else:
                live = [
                    n
                    for n, v in values.items()
                    if isinstance(v, Expr) and last_use[n] > idx and n is not node
                ]
                layer, new_values = _relu_layer(arg, [values[n] for n in live])
                layers.append((*layer, node.name))
                values[node] = new_values[0]
                for n, v in zip(live, new_values[1:]):
                    values[n] = v
        else:
            values[node] = _lower_node(node, values, modules)
        for n in [n for n in values if last_use[n] == idx]:
            del values[n]  # no later user: free its matrix
    raise UnsupportedLayerError("unsupported: the graph (it has no output) at <root>")


def _attr(gm: fx.GraphModule, target: str) -> torch.Tensor:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, torch.Tensor):
        raise UnsupportedLayerError(f"unsupported: attribute {target} (not a tensor) at {target}")
    return obj


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return type(modules[str(node.target)]) is nn.ReLU
    if node.op == "call_function":
        return node.target in _RELU_FUNCS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _relu_layer(arg: Expr, live: list[Expr]) -> tuple[tuple[np.ndarray, np.ndarray], list[Expr]]:
    """The pre-activation map of a ReLU layer and the new expressions of ``arg``'s ReLU and of
    every live value, in the layer's output vector."""
    blocks_M, blocks_c = [arg.M], [arg.c]
    for v in live:
        blocks_M.append(v.M)
        blocks_c.append(v.c)
        if not v.nonneg:
            blocks_M.append(-v.M)
            blocks_c.append(-v.c)
    W, b = np.concatenate(blocks_M, 0), np.concatenate(blocks_c, 0)
    n = W.shape[0]
    out, row = [], 0

    def select(size: int) -> np.ndarray:
        sel = np.zeros((size, n))
        sel[np.arange(size), row + np.arange(size)] = 1.0
        return sel

    m = arg.M.shape[0]
    out.append(Expr(select(m), np.zeros(m), arg.shape, nonneg=True))
    row += m
    for v in live:
        k = v.M.shape[0]
        pos = select(k)
        row += k
        if v.nonneg:
            out.append(Expr(pos, np.zeros(k), v.shape, nonneg=True))
            continue
        neg = select(k)
        row += k
        out.append(Expr(pos - neg, np.zeros(k), v.shape))
    return (W, b), out


def _lower_node(node: fx.Node, values: dict[fx.Node, Any], modules: dict[str, nn.Module]) -> Any:
    """One non-ReLU node: a constant, a Python value (shapes), or an affine Expr."""
    args: Any = fx.node.map_arg(node.args, lambda n: values[n])
    kwargs: Any = fx.node.map_arg(node.kwargs, lambda n: values[n])
    exprs = [v for v in _flat(args) + _flat(kwargs) if isinstance(v, Expr)]
    what, fn = _operation(node, modules)
    if node.target is operator.getitem and isinstance(args[0], tuple):  # x.shape[i]
        return args[0][args[1]]
    if not exprs:  # constants and shapes only
        if any(v is BATCH for v in _flat(args) + _flat(kwargs)):
            raise refuse(node, what, "arithmetic on the batch size")
        try:
            with torch.no_grad():
                return _python_value(fn(*args, **kwargs))
        except Exception as exc:
            raise refuse(node, what, f"it failed on constants: {exc}") from None
    if node.op == "call_method" and node.target == "dim":
        return len(exprs[0].shape) + 1
    if (
        node.op == "call_method"
        and node.target == "size"
        or (node.op == "call_function" and node.target is getattr)
    ):
        return _shape_of(node, exprs[0], args)
    _check_roles(node, what, args, kwargs)
    return _affine(node, what, fn, args, kwargs, exprs)


def _operation(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, Callable[..., Any]]:
    """A name for messages and the callable the node runs; unsupported ops are refused."""
    if node.op == "call_module":
        mod = modules[str(node.target)]
        name = type(mod).__name__
        if type(mod) not in AFFINE_MODULES:
            raise refuse(node, name, "no exact lowering; supported layers: " + _supported())
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)) and mod.running_mean is None:
            raise refuse(node, name, "batch norm without running statistics is not affine")
        copy = _double_eval(mod)
        return name, copy
    if node.op == "call_method":
        method = str(node.target)
        if method not in _SHAPE_ONLY_METHODS | set(_METHOD_FUNCS) | {"size", "dim"}:
            raise refuse(node, f"Tensor.{method}", "no exact lowering")
        return f"Tensor.{method}", lambda obj, *a, **k: getattr(obj, method)(*a, **k)
    target: Any = node.target
    name = getattr(target, "__name__", str(target))
    known = _ADD | _SUB | _MUL | _DIV | _AFFINE_IN_FIRST | _JOINT | {getattr}
    if target not in known:
        raise refuse(node, name, "no exact lowering")
    return name, target


def _supported() -> str:
    return ", ".join(sorted(t.__name__ for t in AFFINE_MODULES | {nn.ReLU}))


def _double_eval(mod: nn.Module) -> nn.Module:
    import copy

    twin = copy.deepcopy(mod).double()
    twin.eval()
    return twin


def _flat(obj: Any) -> list[Any]:
    if isinstance(obj, (tuple, list)):
        return [v for item in obj for v in _flat(item)]
    if isinstance(obj, dict):
        return [v for item in obj.values() for v in _flat(item)]
    return [obj]


def _python_value(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().double()
    return value


def _shape_of(node: fx.Node, expr: Expr, args: Any) -> Any:
    """``x.shape`` / ``x.size()`` / ``x.size(d)`` with the batch size kept symbolic."""
    full = (BATCH, *expr.shape)
    if node.op == "call_function":  # getattr(x, "shape")
        if args[1] != "shape":
            raise refuse(node, f"getattr {args[1]}", "only .shape is read from a tensor")
        return full
    if len(args) > 1:
        return full[int(args[1])]
    return full


def _check_roles(node: fx.Node, what: str, args: Any, kwargs: Any) -> None:
    """Keep the map affine: a product has one tensor operand, a quotient a constant divisor,
    linear ops a constant weight, batch norm runs in eval mode."""
    target: Any = node.target
    if node.op == "call_method":
        methods = _METHOD_FUNCS.get(str(node.target))
        target = next(iter(methods)) if methods else None
    operands = [isinstance(a, Expr) for a in args]
    if target in _MUL and sum(operands) > 1:
        raise refuse(node, what, "a product of two network values is not affine")
    if target in _DIV:
        if any(operands[1:]):
            raise refuse(
                node, what, "division by a network value is not affine (Div only by a constant)"
            )
        if kwargs.get("rounding_mode") is not None:
            raise refuse(node, what, "rounded division is not affine")
    if target in _AFFINE_IN_FIRST and any(operands[1:]) | any(
        isinstance(v, Expr) for v in _flat(kwargs)
    ):
        raise refuse(node, what, "only its first argument may depend on the input")
    if target is F.batch_norm:
        training = kwargs.get("training", args[5] if len(args) > 5 else False)
        if training:
            raise refuse(node, what, "batch norm in training mode uses batch statistics")


def _substitute(obj: Any, fill: Callable[[Expr], torch.Tensor], batch: int) -> Any:
    if isinstance(obj, Expr):
        return fill(obj)
    if obj is BATCH:
        return batch
    if isinstance(obj, tuple):
        return tuple(_substitute(v, fill, batch) for v in obj)
    if isinstance(obj, list):
        return [_substitute(v, fill, batch) for v in obj]
    if isinstance(obj, dict):
        return {k: _substitute(v, fill, batch) for k, v in obj.items()}
    return obj


def _affine(
    node: fx.Node, what: str, fn: Callable[..., Any], args: Any, kwargs: Any, exprs: list[Expr]
) -> Expr:
    """Read the affine map of ``fn`` in its Expr arguments exactly (float64 basis columns)."""
    n_z = exprs[0].M.shape[1]

    def run(fill: Callable[[Expr], torch.Tensor], batch: int) -> torch.Tensor:
        try:
            with torch.no_grad():
                out = fn(*_substitute(args, fill, batch), **_substitute(kwargs, fill, batch))
        except Exception as exc:
            first = first_line(exc)
            raise refuse(node, what, f"it cannot run on the traced shapes: {first}") from None
        if not isinstance(out, torch.Tensor) or out.shape[0] != batch:
            raise refuse(node, what, "it does not keep the batch dimension first")
        return out

    offset = run(lambda e: torch.from_numpy(e.c).reshape((1, *e.shape)), 1)
    zero = run(lambda e: torch.zeros((1, *e.shape), dtype=torch.float64), 1)
    pair = run(
        lambda e: torch.stack(
            [torch.zeros(e.shape, dtype=torch.float64), torch.from_numpy(e.c).reshape(e.shape)]
        ),
        2,
    )
    same = torch.allclose(pair[0], zero[0], rtol=1e-9, atol=1e-9) and torch.allclose(
        pair[1], offset[0], rtol=1e-9, atol=1e-9
    )  # batched kernels may round differently; mixing samples changes values grossly
    if not same:
        raise refuse(node, what, "it mixes the samples of a batch")
    shape = tuple(offset.shape[1:])
    cols = []
    for start in range(0, n_z, _CHUNK):
        stop = min(start + _CHUNK, n_z)
        out = run(_columns(start, stop), stop - start)
        cols.append((out - zero).reshape(stop - start, -1).numpy())
    M = np.concatenate(cols, 0).T.copy() if cols else np.zeros((math.prod(shape), 0))
    c = offset.reshape(-1).numpy().copy()
    if not (np.isfinite(M).all() and np.isfinite(c).all()):
        raise refuse(node, what, "its weights or constants are not finite (NaN or inf)")
    nonneg = all(e.nonneg for e in exprs) and (
        (node.op == "call_method" and node.target in _SHAPE_ONLY_METHODS)
        or (node.op == "call_function" and node.target in _SHAPE_ONLY_FUNCS)
        or (node.op == "call_module" and what in ("Flatten", "Unflatten", "Identity", "Dropout"))
    )
    return Expr(M, c, shape, nonneg)


def _columns(start: int, stop: int) -> Callable[[Expr], torch.Tensor]:
    """Fill an Expr argument with its basis columns ``start:stop`` as a batch."""

    def fill(e: Expr) -> torch.Tensor:
        cols = np.ascontiguousarray(e.M[:, start:stop].T)
        return torch.from_numpy(cols).reshape((stop - start, *e.shape))

    return fill

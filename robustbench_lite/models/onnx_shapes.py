"""Import-time arithmetic: constants folded, and shapes computed from the batch size.

A node whose inputs are all constants is evaluated once, at import (:func:`fold`), when its
result is exact: shape operations on any constant, integer arithmetic, and float32 add, sub,
mul and div (IEEE-rounded in float32 as onnxruntime does). Anything else on constants is
refused by name.

``torch.onnx.export`` writes ``x.reshape(x.shape[0], -1)`` and ``x.view(x.size(0), -1)`` as
``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``: integer vectors computed from a
tensor's shape. Every per-sample dimension is known at import, so such a vector is a
:class:`ShapeValue` whose only unknown item is the batch size; :func:`shape_op` follows it
through ``Shape``, ``Gather``, ``Slice``, ``Unsqueeze``, ``Squeeze``, ``Concat``, ``Cast`` and
``Identity``, a vector that loses the batch size becomes a constant, and any arithmetic on the
batch size is refused. :func:`reshape_target` resolves the ``Reshape`` at the end into a
per-sample shape, so the imported module runs ``x.reshape(x.shape[0], *shape)`` for any batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .onnx_nodes import OnnxNode, type_name

#: Ops evaluated on constants at import time.
FOLDABLE = frozenset(
    {
        "Identity",
        "Cast",
        "Reshape",
        "Unsqueeze",
        "Squeeze",
        "Concat",
        "Gather",
        "Slice",
        "Shape",
        "Add",
        "Sub",
        "Mul",
        "Div",
    }
)
#: Ops that may take a :class:`ShapeValue`.
SHAPE_OPS = frozenset({"Identity", "Cast", "Gather", "Slice", "Unsqueeze", "Squeeze", "Concat"})


@dataclass(frozen=True)
class ShapeValue:
    """An int64 vector (or scalar) computed from a network value's shape; ``None`` items are
    the batch size, unknown until run time."""

    items: tuple[int | None, ...]
    scalar: bool = False


def _known(items: Sequence[int | None], scalar: bool) -> ShapeValue | np.ndarray:
    """A :class:`ShapeValue`, or a constant when it no longer holds the batch size."""
    if any(i is None for i in items):
        return ShapeValue(tuple(items), scalar)
    array = np.array([int(i) for i in items if i is not None], dtype=np.int64)
    return array.reshape(()) if scalar else array


def shape_of(node: OnnxNode, shape: tuple[int, ...]) -> ShapeValue | np.ndarray:
    """``Shape`` of a network value of per-sample ``shape`` (``start``/``end`` attributes)."""
    full: list[int | None] = [None, *shape]
    a = node.attrs()
    start, end = int(a.get("start", 0)), a.get("end")
    return _known(full[slice(start, None if end is None else int(end))], False)


def _axes(node: OnnxNode, rank: int) -> list[int] | None:
    """The ``axes`` of Unsqueeze/Squeeze: the second input (opset >= 13) or the attribute."""
    if len(node.proto.input) > 1 and node.proto.input[1]:
        raw = [int(v) for v in node.integers(1, "axes").reshape(-1)]
    elif "axes" in node.attrs():
        raw = [int(v) for v in node.attrs()["axes"]]
    else:
        return None
    axes = [a + rank if a < 0 else a for a in raw]
    if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
        raise node.malformed(f"axes {raw} for a result of rank {rank}")
    return sorted(axes)


def _int_const(node: OnnxNode, index: int, what: str) -> np.ndarray:
    return node.integers(index, what)


def shape_op(node: OnnxNode, args: list[ShapeValue | np.ndarray | None]) -> ShapeValue | np.ndarray:
    """One node on shape vectors (at least one a :class:`ShapeValue`); ``args[i]`` is the
    value of input ``i`` (a constant or a ShapeValue; None for an omitted input)."""
    op = node.op
    if op not in SHAPE_OPS:
        raise node.unsupported(
            "arithmetic on the batch size (a value computed by Shape); only "
            "Shape/Gather/Unsqueeze/Concat chains that give a batch-flexible Reshape are run"
        )
    first = args[0]
    if first is None:
        raise node.malformed("its first input is missing")
    if op == "Identity":
        return first
    if op == "Cast":
        import onnx

        to = node.attrs().get("to")
        if to not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            raise node.unsupported(
                f"to {type_name(to)}: a shape vector is cast only to an integer type"
            )
        return first
    if op == "Concat":
        if int(node.attrs().get("axis", 0)) not in (0, -1):
            raise node.malformed("a shape vector is concatenated along axis 0")
        items: list[int | None] = []
        for arg in args:
            items += _items(node, arg)
        return _known(items, False)
    if not isinstance(first, ShapeValue):
        raise node.unsupported("only its first input may be computed from a shape")
    if op == "Gather":
        if int(node.attrs().get("axis", 0)) not in (0, -1) or first.scalar:
            raise node.unsupported("only Gather along axis 0 of a shape vector")
        index = _int_const(node, 1, "indices")
        n = len(first.items)
        if ((index < -n) | (index >= n)).any():
            raise node.malformed(f"indices {index.tolist()} out of range for {n} dimensions")
        picked = [first.items[int(i)] for i in index.reshape(-1)]
        if index.ndim > 1:
            raise node.unsupported("only scalar or 1-D indices into a shape vector")
        return _known(picked, index.ndim == 0)
    if op == "Slice":
        if first.scalar:
            raise node.malformed("Slice of a scalar")
        starts, ends = (_int_const(node, i, w).reshape(-1) for i, w in ((1, "starts"), (2, "ends")))
        if len(node.proto.input) > 3 and node.proto.input[3]:
            along = _int_const(node, 3, "axes").reshape(-1)
            if along.size != 1 or int(along[0]) not in (0, -1):
                raise node.unsupported("only Slice along axis 0 of a shape vector")
        step = 1
        if len(node.proto.input) > 4 and node.proto.input[4]:
            steps = _int_const(node, 4, "steps").reshape(-1)
            step = int(steps[0]) if steps.size == 1 else 0
        if starts.size != 1 or ends.size != 1 or step == 0:
            raise node.malformed("a shape vector is sliced by one start, end and non-zero step")
        big = 1 << 62  # ONNX writes INT64_MAX for "to the end"; Python slices clamp the same
        lo, hi = (max(-big, min(big, int(v[0]))) for v in (starts, ends))
        return _known(first.items[lo:hi:step], False)
    if op == "Unsqueeze":
        axes = _axes(node, 1 if first.scalar else 2)
        if not first.scalar or axes != [0]:
            raise node.unsupported("only Unsqueeze of a shape scalar along axis 0")
        return ShapeValue(first.items, False)
    # Squeeze
    axes = _axes(node, 1)
    if first.scalar or len(first.items) != 1 or axes not in (None, [0]):
        raise node.unsupported("only Squeeze of a one-item shape vector along axis 0")
    return ShapeValue(first.items, True)


def _items(node: OnnxNode, arg: ShapeValue | np.ndarray | None) -> list[int | None]:
    if isinstance(arg, ShapeValue):
        if arg.scalar:
            raise node.malformed("Concat of a scalar")
        return list(arg.items)
    if arg is None or arg.ndim != 1 or arg.dtype.kind not in "iu":
        raise node.unsupported("only integer vectors are concatenated with a shape vector")
    return [int(v) for v in arg]


def reshape_target(
    node: OnnxNode, target: Sequence[int | None], shape: tuple[int, ...], batch: int = 1
) -> tuple[int, ...]:
    """The per-sample shape that ``Reshape`` gives a value of per-sample ``shape``.

    ``target`` is the ONNX shape; ``None`` is the batch size (from ``Shape``). The target is
    resolved like onnxruntime does on the file's declared batch size ``batch`` (1 when it is
    not fixed): 0 copies the input's dimension (unless ``allowzero``), -1 takes the rest. The
    batch dimension must stay first, so each sample is reshaped on its own, for any batch.
    """
    allowzero = bool(node.attrs().get("allowzero", 0))
    if any(s is None for s in target[1:]):
        raise node.unsupported(
            f"shape {_show(target)} puts the batch size after the first dimension"
        )
    full = (batch, *shape)
    n = math.prod(full)
    out = []
    for i, s in enumerate(target):
        if s is None:
            s = batch
        elif s == 0 and not allowzero:  # ONNX: 0 copies the input's dimension
            if i >= len(full):
                raise node.malformed(f"shape {_show(target)} copies a dimension the input lacks")
            s = full[i]
        out.append(s)
    if out.count(-1) > 1 or any(s < -1 for s in out):
        raise node.malformed(f"shape {_show(target)}: at most one -1 and no other negative sizes")
    if -1 in out:
        known = math.prod(s for s in out if s != -1)
        if known == 0 or n % known:
            raise node.malformed(f"shape {_show(target)} does not fit an input of shape {full}")
        out[out.index(-1)] = n // known
    if math.prod(out) != n:
        raise node.malformed(
            f"shape {_show(target)} has {math.prod(out)} elements, the input {full} has {n}"
        )
    if len(out) < 2 or out[0] != batch:
        raise node.unsupported(
            f"shape {_show(target)} gives {tuple(out)} for an input of shape {full}: it does "
            "not keep the batch dimension first"
        )
    return tuple(out[1:])


def _show(target: Sequence[int | None]) -> str:
    return "[" + ", ".join("N" if s is None else str(s) for s in target) + "]"


# --------------------------------------------------------------------------- constants


def fold(node: OnnxNode, args: list[np.ndarray | None]) -> np.ndarray:
    """Evaluate ``node`` on constant inputs (``args[i]`` for input ``i``, None if omitted)."""
    op = node.op
    if op not in FOLDABLE:
        raise node.unsupported(
            "all its inputs are constants, and only shape operations and add/sub/mul/div are "
            "evaluated on constants"
        )
    if not args or args[0] is None:
        raise node.malformed("its first input is missing")
    x = args[0]
    a = node.attrs()
    if op == "Identity":
        return x
    if op == "Cast":
        return _cast(node, x)
    if op == "Shape":
        end = a.get("end")
        dims = list(x.shape)[slice(int(a.get("start", 0)), None if end is None else int(end))]
        return np.array(dims, dtype=np.int64)
    if op == "Reshape":
        target = [int(v) for v in node.integers(1, "shape").reshape(-1)]
        if not a.get("allowzero", 0):
            target = [x.shape[i] if s == 0 and i < x.ndim else s for i, s in enumerate(target)]
        return x.reshape(target)
    if op in ("Unsqueeze", "Squeeze"):
        rank = x.ndim + (len(_axes_count(node)) if op == "Unsqueeze" else 0)
        axes = _axes(node, rank)
        if op == "Unsqueeze":
            return x.reshape(_unsqueezed(x.shape, axes or []))
        if axes is None:
            return x.squeeze()
        if any(x.shape[i] != 1 for i in axes):
            raise node.malformed(f"it squeezes axes {axes} of shape {x.shape}")
        return x.squeeze(tuple(axes))
    if op == "Concat":
        parts = [v for v in args if v is not None]
        if len({v.dtype for v in parts}) != 1:
            raise node.malformed("its inputs have different types")
        return np.concatenate(parts, axis=int(a["axis"]))
    if op == "Gather":
        index = node.integers(1, "indices")
        axis = int(a.get("axis", 0))
        axis = axis + x.ndim if axis < 0 else axis
        if not 0 <= axis < x.ndim:
            raise node.malformed(f"axis {a.get('axis')} for a constant of shape {x.shape}")
        n = x.shape[axis]
        if ((index < -n) | (index >= n)).any():
            raise node.malformed(f"indices out of range for {n} entries")
        return np.take(x, index, axis=axis)
    if op == "Slice":
        return _slice(node, x)
    return _arith(node, args)


def _axes_count(node: OnnxNode) -> list[int]:
    if len(node.proto.input) > 1 and node.proto.input[1]:
        return [int(v) for v in node.integers(1, "axes").reshape(-1)]
    return [int(v) for v in node.attrs().get("axes", [])]


def _unsqueezed(shape: tuple[int, ...], axes: list[int]) -> list[int]:
    out, rest = [], list(shape)
    for i in range(len(shape) + len(axes)):
        out.append(1 if i in axes else rest.pop(0))
    return out


def _slice(node: OnnxNode, x: np.ndarray) -> np.ndarray:
    starts = node.integers(1, "starts").reshape(-1)
    ends = node.integers(2, "ends").reshape(-1)
    has = [len(node.proto.input) > i and bool(node.proto.input[i]) for i in range(5)]
    axes = node.integers(3, "axes").reshape(-1) if has[3] else np.arange(starts.size)
    steps = node.integers(4, "steps").reshape(-1) if has[4] else np.ones(starts.size, np.int64)
    if not starts.size == ends.size == axes.size == steps.size or (steps == 0).any():
        raise node.malformed("starts, ends, axes and steps must have one length, steps non-zero")
    index: list[slice] = [slice(None)] * x.ndim
    big = 1 << 62
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax = int(ax) + x.ndim if ax < 0 else int(ax)
        if not 0 <= ax < x.ndim:
            raise node.malformed(f"axis {int(ax)} for a constant of shape {x.shape}")
        lo, hi = (max(-big, min(big, int(v))) for v in (s, e))
        index[ax] = slice(lo, hi, int(st))
    return np.ascontiguousarray(x[tuple(index)])


def _cast(node: OnnxNode, x: np.ndarray) -> np.ndarray:
    """A Cast of a constant, taken when no value changes (float32 stays float32; integers to
    integers or to float32 while they are exact)."""
    import onnx

    to = node.attrs().get("to")
    targets = {
        onnx.TensorProto.FLOAT: np.float32,
        onnx.TensorProto.INT64: np.int64,
        onnx.TensorProto.INT32: np.int32,
    }
    if to not in targets or (x.dtype.kind == "f" and to != onnx.TensorProto.FLOAT):
        raise node.unsupported(
            f"to {type_name(to)} of a {x.dtype} constant changes values or precision; only "
            "value-preserving casts (to float32, or integers to integers) are folded"
        )
    y = x.astype(targets[to])
    if not np.array_equal(y.astype(x.dtype), x):
        raise node.unsupported(f"to {type_name(to)} changes the values of a {x.dtype} constant")
    return y


def _arith(node: OnnxNode, args: list[np.ndarray | None]) -> np.ndarray:
    """Add/Sub/Mul/Div of two constants of one type: float32 (IEEE-rounded in float32, like
    onnxruntime) or integers (Div truncates toward zero, as ONNX does)."""
    a, b = (args + [None, None])[:2]
    if len(args) != 2 or a is None or b is None:
        raise node.malformed("it needs two inputs")
    if (
        a.dtype != b.dtype
        or a.dtype.kind not in "iuf"
        or (a.dtype.kind == "f" and a.dtype != np.float32)
    ):
        raise node.unsupported(f"constants of types {a.dtype} and {b.dtype}")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise node.malformed(f"shapes {a.shape} and {b.shape} do not broadcast") from None
    with np.errstate(all="raise"):
        try:
            if node.op == "Add":
                return np.add(a, b)
            if node.op == "Sub":
                return np.subtract(a, b)
            if node.op == "Mul":
                return np.multiply(a, b)
            if bool(np.any(b == 0)):
                raise node.unsupported("division of constants by 0")
            if a.dtype.kind == "f":
                return np.divide(a, b)
            q = np.abs(a) // np.abs(b)
            return (np.where((a < 0) != (b < 0), -q, q)).astype(a.dtype)
        except FloatingPointError as exc:
            raise node.unsupported(f"arithmetic on constants overflows ({exc})") from None

"""The ONNX importer converts every node exactly or refuses it.

Malformed files (a 1-D Gemm weight, an AveragePool without kernel_shape, NaN weights, a
Reshape to 10^12 elements, huge declared dims) raise CheckpointError (CLI exit 2); ops whose
conversion would change the function (Cast to int32, float64 networks, constant / x) raise
UnsupportedLayerError (``verify`` exits 2 with that line), so it never answers for a different
network. Supported ops are compared with onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import CheckpointError, UnsupportedLayerError
from robustbench_lite.models.onnx_import import MAX_ELEMENTS_ENV, load_onnx_model


def _save(
    path: Path,
    nodes: list[Any],
    inits: dict[str, np.ndarray],
    in_shape: list[int],
    out: str = "y",
    elem: int | None = None,
    opset: int = 13,
) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if elem is None else elem
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", elem, in_shape)],
        [helper.make_tensor_value_info(out, elem, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _node(op: str, inputs: list[str], output: str = "y", **attrs: Any) -> Any:
    from onnx import helper

    return helper.make_node(op, inputs, [output], name=f"{op.lower()}0", **attrs)


def _f32(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _matches_onnxruntime(path: Path, in_shape: tuple[int, ...]) -> torch.nn.Module:
    """Load ``path`` and check its outputs against onnxruntime on random inputs."""
    import onnxruntime as ort

    model = load_onnx_model(path)
    assert model.input_shape == in_shape[1:]
    x = np.random.default_rng(1).uniform(-1, 1, size=(1, *in_shape[1:])).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-5), (got, want)
    return model


def _lowers_exactly(model: Any) -> None:
    """The verifier's lowering computes the same function as the imported network."""
    from robustbench_lite.verify.layers import lower_model

    net = lower_model(model)
    x = np.random.default_rng(2).uniform(-1, 1, size=(5, net.n_inputs))
    with torch.no_grad():
        want = model(torch.from_numpy(x).float().reshape((5, *model.input_shape))).double()
    assert np.allclose(net.forward(x), want.reshape(5, -1).numpy(), atol=1e-5)


# ------------------------------------------------------------------ malformed: CheckpointError


def test_gemm_with_a_1d_weight_is_malformed(tmp_path: Path) -> None:
    path = _save(tmp_path / "g.onnx", [_node("Gemm", ["input", "W"])], {"W": _f32(2)}, [1, 2])
    with pytest.raises(CheckpointError, match="'gemm0' \\(Gemm\\) is malformed: .*2-D matrix"):
        load_onnx_model(path)


def test_averagepool_without_kernel_shape_is_malformed(tmp_path: Path) -> None:
    path = _save(tmp_path / "p.onnx", [_node("AveragePool", ["input"])], {}, [1, 1, 4, 4])
    with pytest.raises(CheckpointError, match="kernel_shape is required"):
        load_onnx_model(path)


def test_reshape_to_1e12_elements_is_refused_without_allocating(tmp_path: Path) -> None:
    shape = np.array([1, 1_000_000, 1_000_000], dtype=np.int64)
    path = _save(tmp_path / "r.onnx", [_node("Reshape", ["input", "s"])], {"s": shape}, [1, 4])
    with pytest.raises(CheckpointError, match="'reshape0' \\(Reshape\\) is malformed: .*shape"):
        load_onnx_model(path)


def test_huge_declared_input_dims_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = [_node("Flatten", ["input"], "f"), _node("Gemm", ["f", "W"], transB=1)]
    path = _save(tmp_path / "h.onnx", nodes, {"W": _f32(1, 8)}, [1, 100_000, 100_000, 100_000])
    with pytest.raises(
        CheckpointError, match=f"1000000000000000 elements per sample.*{MAX_ELEMENTS_ENV}"
    ):
        load_onnx_model(path)
    small = _save(tmp_path / "s.onnx", nodes, {"W": _f32(1, 8)}, [1, 2, 2, 2])
    monkeypatch.setenv(MAX_ELEMENTS_ENV, "4")
    with pytest.raises(CheckpointError, match="over the limit of 4"):
        load_onnx_model(small)
    monkeypatch.setenv(MAX_ELEMENTS_ENV, "8")
    assert load_onnx_model(small).input_shape == (2, 2, 2)


def test_nan_weights_are_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = _f32(2, 2)
    w[0, 0] = np.nan
    path = _save(tmp_path / "n.onnx", [_node("Gemm", ["input", "W"], transB=1)], {"W": w}, [1, 2])
    with pytest.raises(CheckpointError, match="initializer 'W' holds NaN or infinite values"):
        load_onnx_model(path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(
        "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
        "(declare-const Y_1 Real)\n(assert (<= X_0 1))\n(assert (>= X_0 -1))\n"
        "(assert (<= X_1 1))\n(assert (>= X_1 -1))\n(assert (<= Y_0 -1000))\n"
    )
    assert main(["verify", str(path), str(prop), "--timeout", "5", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN" in err[0]  # was a 'timeout' after the whole budget


# ------------------------------------------------------------------ refused: UnsupportedLayerError


def test_cast_to_int32_is_refused_and_verify_no_longer_says_unsat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx import TensorProto

    nodes = [
        _node("Cast", ["input"], "ci", to=TensorProto.INT32),
        _node("Cast", ["ci"], "cf", to=TensorProto.FLOAT),
        _node("Gemm", ["cf", "W"], transB=1),
    ]
    path = _save(tmp_path / "c.onnx", nodes, {"W": np.eye(2, dtype=np.float32)}, [1, 2])
    with pytest.raises(UnsupportedLayerError, match="unsupported: Cast \\(to INT32 .*'cast0'"):
        load_onnx_model(path)
    prop = tmp_path / "p.vnnlib"  # issue 16: y = (0, 0) on [0.2, 0.4]^2, so sat; was unsat
    prop.write_text(
        "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
        "(declare-const Y_1 Real)\n(assert (<= X_0 0.4))\n(assert (>= X_0 0.2))\n"
        "(assert (<= X_1 0.4))\n(assert (>= X_1 0.2))\n(assert (<= Y_0 0.1))\n"
    )
    assert main(["verify", str(path), str(prop), "--timeout", "5", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unsupported: Cast (to INT32" in err[0]


def test_cast_to_float_is_the_identity(tmp_path: Path) -> None:
    from onnx import TensorProto

    nodes = [
        _node("Cast", ["input"], "c", to=TensorProto.FLOAT),
        _node("Gemm", ["c", "W"], transB=1),
    ]
    _matches_onnxruntime(_save(tmp_path / "c.onnx", nodes, {"W": _f32(3, 2)}, [1, 2]), (1, 2))


def test_float64_networks_are_refused_not_cast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx import TensorProto

    w = np.array([[1 + 2e-8]], dtype=np.float64)  # issue 16: float32 rounds it to 1.0
    path = _save(
        tmp_path / "d.onnx",
        [_node("Gemm", ["input", "W"], transB=1)],
        {"W": w},
        [1, 1],
        elem=TensorProto.DOUBLE,
    )
    with pytest.raises(UnsupportedLayerError, match="unsupported: a DOUBLE network"):
        load_onnx_model(path)
    prop = tmp_path / "p.vnnlib"  # sat in float64 (y0 = 1.00000002); was unsat
    prop.write_text(
        "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1))\n"
        "(assert (>= X_0 1))\n(assert (>= Y_0 1.00000001))\n"
    )
    assert main(["verify", str(path), str(prop), "--timeout", "5", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unsupported: a DOUBLE network" in err[0]
    # float64 weights in a float32 graph, and float16 constants, are refused the same way
    mixed = _save(tmp_path / "m.onnx", [_node("Gemm", ["input", "W"], transB=1)], {"W": w}, [1, 1])
    with pytest.raises(UnsupportedLayerError, match="float64 weights"):
        load_onnx_model(mixed)
    half = _save(
        tmp_path / "h.onnx",
        [_node("Mul", ["input", "c"])],
        {"c": np.array([0.1], dtype=np.float16)},
        [1, 1],
    )
    with pytest.raises(UnsupportedLayerError, match="float16 weights"):
        load_onnx_model(half)


def test_constant_over_x_is_refused_but_x_over_constant_is_exact(tmp_path: Path) -> None:
    one = {"c": np.array([2.0], dtype=np.float32)}
    path = _save(tmp_path / "r.onnx", [_node("Div", ["c", "input"])], one, [1, 3])
    with pytest.raises(
        UnsupportedLayerError, match="unsupported: Div \\(constant / x is not affine"
    ):
        load_onnx_model(path)
    model = _matches_onnxruntime(
        _save(tmp_path / "d.onnx", [_node("Div", ["input", "c"])], one, [1, 3]), (1, 3)
    )
    _lowers_exactly(model)
    zero = {"c": np.array([2.0, 0.0, 1.0], dtype=np.float32)}
    with pytest.raises(UnsupportedLayerError, match="division by a constant that contains 0"):
        load_onnx_model(_save(tmp_path / "z.onnx", [_node("Div", ["input", "c"])], zero, [1, 3]))
    model = _matches_onnxruntime(  # constant - x is affine
        _save(tmp_path / "s.onnx", [_node("Sub", ["c", "input"])], one, [1, 3]), (1, 3)
    )
    _lowers_exactly(model)


@pytest.mark.parametrize(
    ("nodes", "inits", "words"),
    [
        ([_node("MatMul", ["W", "input"])], {"W": _f32(3, 3)}, "a constant times x"),
        ([_node("Gemm", ["input", "W"], transA=1)], {"W": _f32(3, 3)}, "transA=1"),
        ([_node("Gemm", ["input", "W"], alpha=0.1)], {"W": _f32(3, 3)}, "alpha \\* B is not exact"),
        ([_node("Conv", ["input", "W"], strides=[1])], {"W": _f32(2, 3, 1, 1)}, "strides=\\[1\\]"),
        ([_node("Tanh", ["input"])], {}, "unsupported: Tanh \\(no exact conversion"),
    ],
)
def test_inexact_or_unknown_nodes_are_refused(
    nodes: list[Any], inits: dict[str, np.ndarray], words: str, tmp_path: Path
) -> None:
    in_shape = [1, 3, 2, 2] if nodes[0].op_type == "Conv" else [1, 3]
    path = _save(tmp_path / "n.onnx", nodes, inits, in_shape)
    with pytest.raises(UnsupportedLayerError, match=words):
        load_onnx_model(path)


def test_the_graph_output_must_end_the_chain(tmp_path: Path) -> None:
    nodes = [_node("Relu", ["input"], "r"), _node("Gemm", ["r", "W"], transB=1)]
    path = _save(tmp_path / "o.onnx", nodes, {"W": _f32(2, 3)}, [1, 3], out="r")
    with pytest.raises(UnsupportedLayerError, match="not the end of the chain"):
        load_onnx_model(path)


# ------------------------------------------------------------------ converted exactly


def test_constant_with_value_float_is_supported(tmp_path: Path) -> None:
    from onnx import helper

    nodes = [
        helper.make_node("Constant", [], ["c"], value_float=2.5, name="c0"),
        _node("Mul", ["input", "c"], "m"),
        helper.make_node("Constant", [], ["b"], value_floats=[1.0, -1.0], name="c1"),
        _node("Add", ["m", "b"], "a"),
        _node("Gemm", ["a", "W"], transB=1),
    ]
    model = _matches_onnxruntime(
        _save(tmp_path / "c.onnx", nodes, {"W": _f32(3, 2)}, [1, 2]), (1, 2)
    )
    _lowers_exactly(model)


def test_batchnorm_after_gemm(tmp_path: Path) -> None:
    """It built BatchNorm2d and crashed (issue 16); a 2-D input now gets BatchNorm1d."""
    rng = np.random.default_rng(3)
    inits = {
        "W": _f32(4, 3),
        "b": _f32(4, seed=1),
        "s": _f32(4, seed=2),
        "bb": _f32(4, seed=3),
        "mu": _f32(4, seed=4),
        "var": rng.uniform(0.2, 2.0, size=4).astype(np.float32),
    }
    nodes = [
        _node("Gemm", ["input", "W", "b"], "g", transB=1),
        _node("BatchNormalization", ["g", "s", "bb", "mu", "var"], "n", epsilon=1e-3),
        _node("Relu", ["n"]),
    ]
    model = _matches_onnxruntime(_save(tmp_path / "bn.onnx", nodes, inits, [1, 3]), (1, 3))
    assert isinstance(model.net[1], torch.nn.BatchNorm1d)
    _lowers_exactly(model)


def test_batchnorm_after_conv_stays_2d(tmp_path: Path) -> None:
    inits = {
        "W": _f32(2, 1, 3, 3),
        "s": _f32(2, seed=2),
        "bb": _f32(2, seed=3),
        "mu": _f32(2, seed=4),
        "var": np.array([0.5, 1.5], dtype=np.float32),
    }
    nodes = [
        _node("Conv", ["input", "W"], "c", pads=[1, 1, 1, 1]),
        _node("BatchNormalization", ["c", "s", "bb", "mu", "var"]),
    ]
    model = _matches_onnxruntime(
        _save(tmp_path / "bn2.onnx", nodes, inits, [1, 1, 4, 4]), (1, 1, 4, 4)
    )
    assert isinstance(model.net[1], torch.nn.BatchNorm2d)


def test_averagepool_default_stride_is_one(tmp_path: Path) -> None:
    """ONNX's default stride is 1; the converter used kernel_shape (4 outputs instead of 9)."""
    nodes = [
        _node("AveragePool", ["input"], "p", kernel_shape=[2, 2]),
        _node("Flatten", ["p"]),
    ]
    model = _matches_onnxruntime(_save(tmp_path / "p.onnx", nodes, {}, [1, 1, 4, 4]), (1, 1, 4, 4))
    assert model(torch.zeros(1, 1, 4, 4)).shape == (1, 9)
    _lowers_exactly(model)
    padded = [
        _node(
            "AveragePool", ["input"], "p", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        _node("Flatten", ["p"]),
    ]
    _matches_onnxruntime(_save(tmp_path / "q.onnx", padded, {}, [1, 2, 5, 5]), (1, 2, 5, 5))


def test_reshape_with_zero_copies_the_dimension(tmp_path: Path) -> None:
    shape = np.array([1, 0, -1], dtype=np.int64)  # (1, 2, 3, 2) -> (1, 2, 6)
    nodes = [_node("Reshape", ["input", "s"], "r"), _node("Flatten", ["r"])]
    _matches_onnxruntime(
        _save(tmp_path / "r.onnx", nodes, {"s": shape}, [1, 2, 3, 2]), (1, 2, 3, 2)
    )


def test_gemm_alpha_beta_and_matmul_add(tmp_path: Path) -> None:
    inits = {"W": _f32(3, 4), "b": _f32(1, 4, seed=5)}
    gemm = [_node("Gemm", ["input", "W", "b"], alpha=2.0, beta=0.5)]
    _lowers_exactly(_matches_onnxruntime(_save(tmp_path / "g.onnx", gemm, inits, [1, 3]), (1, 3)))
    matmul = [_node("MatMul", ["input", "W"], "m"), _node("Add", ["m", "b"])]
    model = _matches_onnxruntime(_save(tmp_path / "m.onnx", matmul, inits, [1, 3]), (1, 3))
    assert len(model.net) == 1  # fused into one Linear


def test_reshape_that_merges_the_batch_dimension_is_refused(tmp_path: Path) -> None:
    """``Reshape(x, [-1])`` gives a 1-D tensor (50,), not (1, 50): refused, not reinterpreted."""
    flat = np.array([-1], dtype=np.int64)
    path = _save(tmp_path / "r.onnx", [_node("Reshape", ["input", "s"])], {"s": flat}, [1, 2, 5, 5])
    with pytest.raises(UnsupportedLayerError, match="does not keep the batch dimension first"):
        load_onnx_model(path)
    wrong = np.array([1, 7], dtype=np.int64)
    path = _save(tmp_path / "w.onnx", [_node("Reshape", ["input", "s"])], {"s": wrong}, [1, 2, 5])
    with pytest.raises(CheckpointError, match="has 7 elements, the input \\(1, 2, 5\\) has 10"):
        load_onnx_model(path)


# ------------------------------------------------------------------ general graphs (issues 15, 16)


def _unique(nodes: list[Any]) -> list[Any]:
    """The nodes, named ``<op><index>`` (onnxruntime wants node names unique)."""
    for i, node in enumerate(nodes):
        node.name = f"{node.op_type.lower()}{i}"
    return nodes


def test_residual_add_and_sub_of_two_branches(tmp_path: Path) -> None:
    inits = {"W1": _f32(3, 3), "W2": _f32(3, 3, seed=1), "W3": _f32(2, 3, seed=2)}
    nodes = [
        _node("Gemm", ["input", "W1"], "a", transB=1),
        _node("Relu", ["a"], "r"),
        _node("Gemm", ["r", "W2"], "b", transB=1),
        _node("Add", ["b", "input"], "s"),  # a residual connection
        _node("Sub", ["s", "r"], "d"),  # and a difference of two branches
        _node("Relu", ["d"], "e"),
        _node("Gemm", ["e", "W3"], transB=1),
    ]
    model = _matches_onnxruntime(
        _save(tmp_path / "res.onnx", _unique(nodes), inits, [1, 3]), (1, 3)
    )
    assert not isinstance(model.net, torch.nn.Sequential)
    _lowers_exactly(model)


def test_shape_chain_with_slice_is_a_batch_flexible_reshape(tmp_path: Path) -> None:
    """``Shape -> Slice [0:1] -> Concat [N, -1] -> Reshape`` keeps the batch dimension."""
    inits = {
        "zero": np.array([0], dtype=np.int64),
        "one": np.array([1], dtype=np.int64),
        "rest": np.array([-1], dtype=np.int64),
        "W": _f32(2, 12),
    }
    nodes = [
        _node("Shape", ["input"], "sh"),
        _node("Slice", ["sh", "zero", "one"], "n"),
        _node("Concat", ["n", "rest"], "target", axis=0),
        _node("Reshape", ["input", "target"], "flat"),
        _node("Gemm", ["flat", "W"], transB=1),
    ]
    model = _matches_onnxruntime(
        _save(tmp_path / "s.onnx", nodes, inits, [1, 3, 2, 2]), (1, 3, 2, 2)
    )
    assert model(torch.zeros(7, 3, 2, 2)).shape == (7, 2)
    _lowers_exactly(model)


def test_matmul_used_twice_is_not_fused(tmp_path: Path) -> None:
    inits = {"W": _f32(3, 3), "b": _f32(3, seed=1)}
    nodes = [
        _node("MatMul", ["input", "W"], "m"),
        _node("Add", ["m", "b"], "a"),
        _node("Add", ["a", "m"]),
    ]
    model = _matches_onnxruntime(_save(tmp_path / "m.onnx", _unique(nodes), inits, [1, 3]), (1, 3))
    _lowers_exactly(model)


def test_constants_are_folded_exactly_or_refused(tmp_path: Path) -> None:
    from onnx import TensorProto

    inits = {"c": np.array([[0.5, -2.0, 4.0]], dtype=np.float32), "W": _f32(2, 3)}
    nodes = [
        _node("Identity", ["c"], "c2"),
        _node("Mul", ["c2", "c"], "c3"),  # folded in float32: [0.25, 4, 16]
        _node("Sub", ["input", "c3"], "x1"),
        _node("Gemm", ["x1", "W"], transB=1),
    ]
    _lowers_exactly(_matches_onnxruntime(_save(tmp_path / "f.onnx", nodes, inits, [1, 3]), (1, 3)))
    to_int = [_node("Cast", ["c"], "ci", to=TensorProto.INT64)] + nodes[2:]
    to_int[1] = _node("Sub", ["input", "ci"], "x1")
    with pytest.raises(UnsupportedLayerError, match="unsupported: Cast \\(to INT64 of a float32"):
        load_onnx_model(_save(tmp_path / "i.onnx", to_int, inits, [1, 3]))
    tanh = [_node("Tanh", ["c"], "t"), _node("Sub", ["input", "t"], "x1"), nodes[3]]
    with pytest.raises(UnsupportedLayerError, match="unsupported: Tanh \\(all its inputs are"):
        load_onnx_model(_save(tmp_path / "t.onnx", tanh, inits, [1, 3]))


@pytest.mark.parametrize(
    ("nodes", "inits", "in_shape", "words"),
    [
        (  # (N, 3) + (N, 1, 3) would broadcast the batch dimension
            [_node("Reshape", ["input", "s"], "r"), _node("Add", ["input", "r"])],
            {"s": np.array([0, 1, 3], dtype=np.int64)},
            [1, 3],
            "they must have one rank",
        ),
        (
            [_node("Add", ["input", "c"])],
            {"c": _f32(2, 3)},
            [1, 3],
            "would broadcast over the batch dimension",
        ),
        (
            [_node("Concat", ["input", "c"], axis=1)],
            {"c": _f32(1, 3)},
            [1, 3],
            "only network values are concatenated",
        ),
        (
            [_node("Concat", ["input", "input"], axis=0)],
            {},
            [1, 3],
            "axis 0 is the batch dimension",
        ),
        (
            [
                _node("Shape", ["input"], "s"),
                _node("Mul", ["s", "s"], "t"),
                _node("Reshape", ["input", "t"]),
            ],
            {},
            [1, 3],
            "unsupported: Mul \\(arithmetic on the batch size",
        ),
        ([_node("Mul", ["input", "input"])], {}, [1, 3], "a product of two network values"),
        ([_node("Div", ["input", "input"])], {}, [1, 3], "a quotient of two network values"),
    ],
)
def test_graphs_without_an_exact_conversion_are_refused(
    nodes: list[Any], inits: dict[str, np.ndarray], in_shape: list[int], words: str, tmp_path: Path
) -> None:
    path = _save(tmp_path / "n.onnx", nodes, inits, in_shape)
    with pytest.raises(UnsupportedLayerError, match=words):
        load_onnx_model(path)


def test_nodes_out_of_order_are_malformed(tmp_path: Path) -> None:
    nodes = [_node("Relu", ["r"]), _node("Relu", ["input"], "r")]
    with pytest.raises(CheckpointError, match="'r' is computed by no earlier node"):
        load_onnx_model(_save(tmp_path / "o.onnx", nodes, {}, [1, 3]))


def test_global_average_pool_and_a_dropout_in_training_mode(tmp_path: Path) -> None:
    nodes = [
        _node("Conv", ["input", "W"], "c", pads=[1, 1, 1, 1]),
        _node("Relu", ["c"], "r"),
        _node("GlobalAveragePool", ["r"], "p"),
        _node("Flatten", ["p"], "f"),
        _node("Gemm", ["f", "V"], transB=1),
    ]
    inits = {"W": _f32(4, 2, 3, 3), "V": _f32(3, 4, seed=1)}
    model = _matches_onnxruntime(
        _save(tmp_path / "g.onnx", nodes, inits, [1, 2, 5, 5]), (1, 2, 5, 5)
    )
    _lowers_exactly(model)
    dropout = [_node("Dropout", ["input", "ratio", "train"], "d"), _node("Relu", ["d"])]
    inits = {"ratio": np.array(0.5, dtype=np.float32), "train": np.array(True)}
    with pytest.raises(UnsupportedLayerError, match="Dropout \\(training_mode=True"):
        load_onnx_model(_save(tmp_path / "d.onnx", dropout, inits, [1, 3]))

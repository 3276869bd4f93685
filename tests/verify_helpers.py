"""Helpers for the verifier tests: tiny random ReLU networks, ONNX files, exact ground truth."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

import robustbench_lite as rbl

#: Wall-clock budget (s) of a verifier call whose test asserts a decision (VERIFIED or
#: FALSIFIED), not a speed: these instances decide in seconds, so the budget only ends a hang
#: and a test cannot fail because a loaded machine ran it slowly.
DECIDE_S = 1800.0


def shared_vnncomp() -> Path | None:
    """../shared/benchmarks/vnncomp (or $RBL_VNNCOMP_DIR), or None when absent."""
    env = os.environ.get("RBL_VNNCOMP_DIR")
    path = (
        Path(env)
        if env
        else Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "vnncomp"
    )
    return path if (path / "acasxu" / "expected.csv").is_file() else None


def random_mlp(sizes: list[int], seed: int) -> nn.Sequential:
    """A seeded ReLU MLP with the given layer sizes (float32)."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=gen) * 0.5)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def as_model(net: nn.Module, n_in: int, lo: float = -1.0, hi: float = 1.0) -> rbl.Model:
    return rbl.Model(net=net, bounds=(lo, hi), input_shape=(n_in,))


def write_onnx(net: nn.Sequential, path: Path, n_in: int) -> Path:
    """Write a Linear/ReLU ``nn.Sequential`` as ONNX (Gemm/Relu nodes) with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, cur = [], [], "input"
    for i, layer in enumerate(net):
        out = f"t{i}"
        if isinstance(layer, nn.Linear):
            inits += [
                numpy_helper.from_array(layer.weight.detach().numpy(), f"W{i}"),
                numpy_helper.from_array(layer.bias.detach().numpy(), f"b{i}"),
            ]
            nodes.append(
                helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out], transB=1, name=f"gemm{i}")
            )
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [cur], [out], name=f"relu{i}"))
        else:
            nodes.append(helper.make_node("Tanh", [cur], [out], name=f"tanh{i}"))
        cur = out
    n_out = [m for m in net if isinstance(m, nn.Linear)][-1].out_features
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, n_out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def exact_answer(
    net: nn.Sequential, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, d: np.ndarray
) -> bool:
    """True iff some x in [lo, hi] has ``C f(x) <= d``: one LP per activation pattern (tiny nets only)."""
    from scipy.optimize import linprog

    lins = [m for m in net if isinstance(m, nn.Linear)]
    Ws = [m.weight.detach().double().numpy() for m in lins]
    bs = [m.bias.detach().double().numpy() for m in lins]
    hidden = [w.shape[0] for w in Ws[:-1]]
    for pattern in itertools.product([0, 1], repeat=sum(hidden)):
        A_ub, b_ub = [], []
        M, c = np.eye(lo.size), np.zeros(lo.size)  # current layer as M x + c
        pos = 0
        for W, b, n in zip(Ws[:-1], bs[:-1], hidden):
            M, c = W @ M, W @ c + b
            phase = np.array(pattern[pos : pos + n], dtype=float)
            pos += n
            for j in range(n):  # active: z >= 0 ; inactive: z <= 0
                sign = -1.0 if phase[j] else 1.0
                A_ub.append(sign * M[j])
                b_ub.append(-sign * c[j])
            M, c = M * phase[:, None], c * phase
        M, c = Ws[-1] @ M, Ws[-1] @ c + bs[-1]
        A_ub += list(C @ M)
        b_ub += list(d - C @ c)
        res = linprog(
            np.zeros(lo.size),
            A_ub=np.array(A_ub),
            b_ub=np.array(b_ub),
            bounds=list(zip(lo, hi)),
            method="highs",
        )
        if res.status == 0:
            return True
    return False

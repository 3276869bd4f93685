"""A handful of fast ACAS Xu instances with known answers (VNN-COMP ground truth)."""

from __future__ import annotations

import numpy as np
import pytest
from robustbench_lite.verify.vnnlib import read_vnnlib
from verify_helpers import DECIDE_S, shared_vnncomp

from robustbench_lite.core.registry import create_verifier
from robustbench_lite.core.types import Status
from robustbench_lite.models.onnx_import import load_onnx_model

ROOT = shared_vnncomp()
pytestmark = [
    pytest.mark.skipif(
        ROOT is None, reason="../shared/benchmarks/vnncomp is absent (set RBL_VNNCOMP_DIR)"
    ),
    pytest.mark.slow,
]

INSTANCES = [  # (net, prop, expected): unsat ones that close in under a second of CPU, sat ones found fast
    ("2_4", "1", "unsat"),
    ("2_5", "1", "unsat"),
    ("2_3", "2", "sat"),
    ("2_7", "2", "sat"),
]


@pytest.mark.parametrize(("net", "prop", "expected"), INSTANCES)
def test_known_answers(net: str, prop: str, expected: str) -> None:
    import onnxruntime as ort

    assert ROOT is not None
    onnx_path = ROOT / "acasxu" / "onnx" / f"ACASXU_run2a_{net}_batch_2000.onnx"
    prop_obj = read_vnnlib(ROOT / "acasxu" / "vnnlib" / f"prop_{prop}.vnnlib")
    model = load_onnx_model(onnx_path)
    res = create_verifier("complete", workers=1).verify_property(
        model, prop_obj, timeout_s=DECIDE_S, onnx_path=str(onnx_path)
    )
    assert res.status is {"sat": Status.FALSIFIED, "unsat": Status.VERIFIED}[expected], res.reason
    if expected == "sat":
        assert res.x is not None
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        y = sess.run(
            None, {sess.get_inputs()[0].name: res.x.astype(np.float32).reshape(1, 1, 1, 5)}
        )[0]
        assert prop_obj.holds_at(res.x, y.reshape(-1))

"""The Python and CLI front doors of the complete verifier; plug-in loading stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from verify_helpers import DECIDE_S

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.core.types import Status


def test_loading_the_verifier_plugins_does_not_import_z3_or_onnxruntime() -> None:
    code = (
        "import sys, robustbench_lite as rbl; assert 'complete' in rbl.list_verifiers(); "
        "print(','.join(m for m in ('z3', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


@pytest.mark.data
def test_digits_mlp_front_doors(
    digits_mlp: rbl.Model,
    digits: tuple[torch.Tensor, torch.Tensor],
    capsys: pytest.CaptureFixture[str],
) -> None:
    x, y = digits[0][:6], digits[1][:6]
    res = rbl.create_verifier("complete", workers=2).verify(
        digits_mlp, x, y, "linf:0.01", timeout_s=DECIDE_S
    )
    assert len(res.per_sample) == 6 and res.verified_fraction >= 0.5
    assert res.layer_bounds is not None and res.layer_bounds[0][0].shape == (6, 32)
    big = rbl.create_verifier("complete", workers=1).verify(
        digits_mlp, x, y, "linf:0.3", timeout_s=DECIDE_S
    )
    assert big.falsified_fraction > 0
    for i, cex in big.counterexamples.items():
        assert big.per_sample[i] is Status.FALSIFIED
        assert (cex - x[i]).abs().max() <= 0.3 + 1e-6
        assert (
            digits_mlp(cex[None]).argmax(1).item() != y[i].item()
            or digits_mlp(cex[None])[0, y[i]] <= digits_mlp(cex[None]).topk(2).values[0, 1]
        )
    assert (
        main(
            [
                "verify",
                "--model",
                "zoo:digits-mlp",
                "--threat",
                "linf:0.01",
                "--n",
                "4",
                "--timeout",
                "10",
            ]
        )
        == 0
    )
    assert "verified" in capsys.readouterr().out

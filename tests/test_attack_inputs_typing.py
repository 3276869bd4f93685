"""Tensor-only attacks refuse a mapping of modalities with one clear error (``require_tensor``).

``Attack.__call__`` hands a mapping to the model first, so the check is exercised through
``run`` itself, where each tensor-only attack narrows its input.
"""

from __future__ import annotations

import pytest
import torch

import robustbench_lite as rbl

TENSOR_ONLY = ["pgd", "fgsm", "apgd_ce", "square", "fmn", "standard", "fb_deepfool"]


@pytest.mark.parametrize("name", TENSOR_ONLY)
def test_tensor_attack_rejects_modalities(name: str) -> None:
    model = rbl.load_model("zoo:digits-cnn")
    x, y = rbl.load_data("digits", split="test", n=4)
    attack = rbl.create_attack(name)
    with pytest.raises(rbl.UnsupportedThreatError) as err:
        attack.run(model, {"lidar": x, "camera": x}, y, rbl.ThreatModel.parse("linf:0.1"),
                   target=None, generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert str(err.value) == (
        f"attack {name} takes one input tensor, got a mapping of modalities (camera, lidar); "
        "use a patch attack such as fusion_patch for multimodal models"
    )


def test_tensor_input_passes_unchanged(digits_cnn: rbl.Model) -> None:
    x, y = rbl.load_data("digits", split="test", n=4)
    result = rbl.create_attack("pgd", steps=2)(digits_cnn, x, y, "linf:0.1")
    assert result.x_adv.shape == x.shape

"""Tensor-only attacks refuse a mapping of modalities with one clear error, before any model call."""

from __future__ import annotations

import pytest

import robustbench_lite as rbl

TENSOR_ONLY = ["pgd", "fgsm", "apgd_ce", "square", "fmn", "standard", "fb_deepfool"]


@pytest.mark.parametrize("name", TENSOR_ONLY)
def test_tensor_attack_rejects_modalities(name: str) -> None:
    model = rbl.load_model("zoo:digits-cnn")
    x, y = rbl.load_data("digits", split="test", n=4)
    with pytest.raises(rbl.UnsupportedThreatError) as err:
        rbl.create_attack(name)(model, {"lidar": x, "camera": x}, y, "linf:0.1")
    assert str(err.value) == (
        f"attack {name} takes one input tensor, got a mapping of modalities (camera, lidar); "
        "use a patch attack such as fusion_patch for multimodal models"
    )


def test_tensor_input_passes_unchanged(digits_cnn: rbl.Model) -> None:
    x, y = rbl.load_data("digits", split="test", n=4)
    result = rbl.create_attack("pgd", steps=2)(digits_cnn, x, y, "linf:0.1")
    assert result.x_adv.shape == x.shape

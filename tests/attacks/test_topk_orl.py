"""zoo:orl-cnn (40 identities) and QuadAttack at a K that only a many-class model allows."""

from __future__ import annotations

import pytest
import torch
from conftest import data_dir_or_skip
from robustbench_lite.attacks._feature_split import split_model
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.threat import ordered_topk_holds

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def orl_cnn(one_thread: None) -> rbl.Model:
    data_dir_or_skip("att_faces_orl")
    return rbl.load_model("zoo:orl-cnn")


@pytest.fixture(scope="module")
def orl_test(orl_cnn: rbl.Model) -> tuple[torch.Tensor, torch.Tensor]:
    return rbl.load_data("orl", split="test", size=(56, 46))


def test_orl_cnn_is_accurate_and_splits_into_features_and_linear_head(
    orl_cnn: rbl.Model, orl_test: tuple
) -> None:
    x, y = orl_test
    assert x.shape == (120, 1, 56, 46) and int(y.max()) == 39
    accuracy = float((orl_cnn.logits(x).argmax(dim=1) == y).float().mean())
    assert accuracy >= 0.85
    assert orl_cnn.meta["clean_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert isinstance(orl_cnn.net, nn.Sequential) and isinstance(orl_cnn.net[-1], nn.Linear)
    split = split_model(orl_cnn, check_inputs=x[:4])
    assert split.weight.shape == (40, 128)


def test_quadattack_reaches_ordered_top10_of_40_identities(
    orl_cnn: rbl.Model, orl_test: tuple
) -> None:
    x, y = orl_test
    keep = orl_cnn.logits(x).argmax(dim=1) == y
    x, y = x[keep][:8], y[keep][:8]
    result = rbl.create_attack("quadattack", budget="1x60", lr=0.1)(
        orl_cnn, x, y, "none:top_k:10", seed=0
    )
    assert result.success_rate >= 0.5
    with torch.no_grad():
        fresh = orl_cnn.net(result.x_adv)
    assert torch.equal(ordered_topk_holds(fresh, result.target), result.success)
    assert result.metrics["qp_max_residual"] < 1e-6

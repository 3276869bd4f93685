"""CW^K and AD baselines, and the ordered top-K metrics helper."""

from __future__ import annotations

import math

import pytest
import torch
from robustbench_lite.attacks._topk_metrics import perturbation_norms, topk_metrics
from robustbench_lite.attacks.ad_topk import target_distribution
from robustbench_lite.attacks.cw_topk import cw_topk_loss
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.attack import AttackResult
from robustbench_lite.core.errors import ModelSplitError, RobustbenchLiteError
from robustbench_lite.core.threat import ordered_topk_holds

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cw_topk_loss_is_zero_exactly_when_the_order_holds_with_margin() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 8, generator=gen)
    targets = torch.stack([torch.randperm(8, generator=gen)[:3] for _ in range(500)])
    placed = torch.tensor([3.0, 2.5, 2.0]) + torch.rand(250, 3, generator=gen) * 0.6
    logits[:250] = logits[:250].scatter(1, targets[:250], placed)  # some hold, some do not
    loss = cw_topk_loss(logits, targets, kappa=1e-6)
    holds = ordered_topk_holds(logits, targets)
    assert holds.any() and (~holds).any()
    assert torch.equal(loss == 0, holds)
    # a hand example: order 2 > 0 > 1 wanted, logits give 2 > 1 > 0. Prefix {2}: 1 - 3 < 0;
    # prefix {2, 0}: class 1 is 1 above min(3, 0) = 0; prefix {2, 0, 1}: -1 - 0 < 0.
    z = torch.tensor([[0.0, 1.0, 3.0, -1.0]])
    assert float(cw_topk_loss(z, torch.tensor([[2, 0, 1]]))) == pytest.approx(1.0 / 3)


def test_ad_target_distribution_ranks_the_targets_in_order() -> None:
    sim = torch.nn.functional.normalize(
        torch.randn(6, 4, generator=torch.Generator().manual_seed(1)), dim=1
    )
    targets = torch.tensor([[4, 1, 3], [0, 5, 2]])
    q = target_distribution(sim @ sim.T, targets, alpha=10.0, beta=0.3)
    assert torch.allclose(q.sum(dim=1), torch.ones(2))
    assert torch.equal(q.argsort(dim=1, descending=True)[:, :3], targets)
    flat = target_distribution(torch.zeros(6, 6), targets, 10.0, 0.3)
    others = flat.scatter(1, targets, 0.0)
    assert torch.allclose(others[others > 0], others[others > 0][0])  # no prior: uniform rest


def _correct(model: rbl.Model, digits: tuple, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digits
    keep = model.logits(x).argmax(dim=1) == y
    return x[keep][:n], y[keep][:n]


@pytest.mark.parametrize("method", ["cw_topk", "ad_topk"])
def test_baselines_reach_ordered_top2_and_successes_are_real(
    method: str, digits_cnn: rbl.Model, digits: tuple
) -> None:
    x, y = _correct(digits_cnn, digits, 20)
    result = rbl.create_attack(method, budget="1x60", lr=0.03)(
        digits_cnn, x, y, "none:top_k:2", seed=0
    )
    assert result.success_rate >= 0.7
    with torch.no_grad():
        fresh = digits_cnn.net(result.x_adv)
    assert torch.equal(ordered_topk_holds(fresh, result.target), result.success)
    metrics = topk_metrics(x, result)
    assert metrics["asr"] == result.success_rate
    assert 0 < metrics["mean_linf"] <= metrics["mean_l2"] <= metrics["mean_l1"]


def test_ad_prior_needs_a_linear_head_unless_zero(digits: tuple) -> None:
    class Opaque(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)  # type: ignore[no-any-return]

    model = rbl.Model(net=Opaque(), name="opaque", input_shape=(1, 8, 8))
    x, y = digits[0][:4], digits[1][:4]
    with pytest.raises(ModelSplitError, match="cannot find the linear head"):
        rbl.create_attack("ad_topk", budget="1x2")(model, x, y, "none:top_k:2")
    result = rbl.create_attack("ad_topk", budget="1x2", prior="zero")(model, x, y, "none:top_k:2")
    assert result.x_adv.shape == x.shape
    with pytest.raises(RobustbenchLiteError, match="prior: 'glove': choose one of"):
        rbl.create_attack("ad_topk", prior="glove")


def test_metrics_average_over_successful_clean_correct_samples_only() -> None:
    x = torch.zeros(4, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.3  # success
    x_adv[1, 0, :, :] = 0.5  # success but not clean-correct: excluded
    x_adv[2, 0, 0, :] = 0.4  # failure: excluded
    result = AttackResult(
        attack="t",
        threat="none:top_k:2",
        x_adv=x_adv,
        success=torch.tensor([True, True, False, False]),
        clean_correct=torch.tensor([True, False, True, True]),
        elapsed_s=0.0,
    )
    m = topk_metrics(x, result)
    assert m["asr"] == pytest.approx(1 / 3)
    assert m["mean_l1"] == pytest.approx(0.3) and m["mean_l2"] == pytest.approx(0.3)
    assert m["mean_linf"] == pytest.approx(0.3) and m["n_success"] == 1
    empty = perturbation_norms(x, x_adv, torch.zeros(4, dtype=torch.bool))
    assert all(math.isnan(v) for v in empty.values())

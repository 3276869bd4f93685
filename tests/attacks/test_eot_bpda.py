"""Adaptive attacks on transform defenses (BPDA, EOT) and repeated-pass judging of random models.

Real computation on zoo:digits-cnn: BPDA breaks a rounding defense that PGD through the real
transform cannot; EOT averages a random defense's gradients; a random model is judged over its
draws, so a lucky draw never counts; a deterministic model is judged on one pass as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from robustbench_lite.attacks._eot import EOTNet, adaptive_plan, eot_view
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.attack import Attack, AttackOutput, judged_clean
from robustbench_lite.core.model import AppliedDefense
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm

N = 64


def _plain(model: rbl.Model) -> rbl.Model:
    """The defended model without its surrogate: gradients go through the real transform."""
    return dataclasses.replace(model, surrogate=None)


def test_bpda_breaks_a_rounding_defense_that_plain_pgd_cannot(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits[0][:N], digits[1][:N]
    defended = rbl.create_defense("bit_depth", bits=4).apply(digits_cnn)
    pgd = rbl.create_attack("pgd", steps=20)
    plain = pgd(_plain(defended), x, y, "linf:0.1", seed=0)
    bpda = pgd(defended, x, y, "linf:0.1", seed=0)
    undefended = pgd(digits_cnn, x, y, "linf:0.1", seed=0)
    assert plain.clean_accuracy == bpda.clean_accuracy >= 0.9
    # zero gradients: PGD through the rounding moves nowhere useful (masking)
    assert plain.robust_accuracy >= plain.clean_accuracy - 0.05
    assert bpda.robust_accuracy <= plain.robust_accuracy - 0.3
    assert bpda.robust_accuracy <= undefended.robust_accuracy + 0.1


def test_standard_names_bpda_and_flags_the_masking(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits[0][:N], digits[1][:N]
    defended = rbl.create_defense("jpeg", quality=75).apply(digits_cnn)
    result = rbl.create_attack("standard", scale=0.1)(defended, x, y, "linf:0.1", seed=0)
    m = result.metrics
    assert m["adaptive"] == "BPDA" and "BPDA used because jpeg(75)" in m["adaptive_text"]
    assert m["zero_gradient_fraction"] == 1.0 and m["masking"] is True
    assert "gradient masking suspected" in m["masking_text"]
    assert "broken_by_apgd_ce_exact" in m  # the real gradients were tried too
    plain = rbl.create_attack("pgd", steps=10)(_plain(defended), x, y, "linf:0.1", seed=0)
    assert result.robust_accuracy <= plain.robust_accuracy - 0.3
    assert result.draws == 1 and "judging" not in m  # deterministic: one pass


def test_standard_on_an_undefended_model_is_the_plain_ensemble(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits[0][:16], digits[1][:16]
    result = rbl.create_attack("standard", scale=0.05)(digits_cnn, x, y, "linf:0.1", seed=0)
    assert "adaptive" not in result.metrics and "broken_by_apgd_ce_exact" not in result.metrics
    assert result.draws == 1 and result.draw_fraction is None


def test_eot_averages_log_probabilities_over_independent_draws(digits_cnn: rbl.Model) -> None:
    defended = rbl.create_defense("resize_pad", min_scale=0.6).apply(digits_cnn)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    with torch.no_grad():
        averaged = EOTNet(defended, 4)(x)
    torch.manual_seed(1)
    with torch.no_grad():  # the same stream: one pass over the 4 stacked copies
        stacked = torch.log_softmax(defended(x.repeat(4, 1, 1, 1)), dim=1).reshape(4, 3, -1)
    assert torch.allclose(averaged, stacked.mean(dim=0), atol=1e-6)
    assert not torch.allclose(stacked[0], stacked[1])  # the copies drew differently


def test_eot_gradients_are_steadier_than_single_draw_gradients(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    defended = rbl.create_defense("resize_pad", min_scale=0.7).apply(digits_cnn)
    x, y = digits[0][:N], digits[1][:N]
    torch.manual_seed(0)

    def grad(model: rbl.Model) -> torch.Tensor:
        x_in = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model.differentiable(x_in), y, reduction="sum")
        return torch.autograd.grad(loss, x_in)[0].flatten(1)

    def agreement(model: rbl.Model) -> float:
        return float(nn.functional.cosine_similarity(grad(model), grad(model)).mean())

    single, averaged = agreement(defended), agreement(eot_view(defended, 16))
    assert averaged > single + 0.2  # two independent EOT estimates agree far better


def test_standard_uses_eot_on_a_random_defense_and_judges_over_draws(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits[0][:N], digits[1][:N]
    defended = rbl.create_defense("resize_pad", min_scale=0.8, draws=8).apply(digits_cnn)
    plan = adaptive_plan(defended, 6)
    assert plan.label == "EOT" and plan.exact is None
    standard = rbl.create_attack("standard", scale=0.05, eot_samples=6)
    result = standard(defended, x, y, "linf:0.1", seed=0)
    m = result.metrics
    assert m["adaptive"] == "EOT" and "resize_pad(0.8) is random" in m["adaptive_text"]
    assert "at least 4 of 8 forward passes" in m["judging"]
    assert result.draws == 8 and result.draw_fraction == 0.5
    assert result.clean_accuracy >= 0.85 and result.robust_accuracy <= 0.7
    again = standard(defended, x, y, "linf:0.1", seed=0)  # seeded: reproducible
    assert torch.equal(again.success, result.success)


class CoinNet(nn.Module):
    """Predicts class 0 with probability ``p`` per sample and pass, else class 1."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = torch.rand(x.shape[0]) < self.p
        return torch.stack([zero.float(), (~zero).float()], dim=1)


@dataclass(frozen=True)
class Unchanged(Attack):
    """Returns the clean inputs: success is whatever the judging says about them."""

    name = "unchanged"
    supports = frozenset({(Norm.LINF, Goal.UNTARGETED)})

    def run(
        self,
        model: rbl.Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> Inputs | AttackOutput:
        return x


def _coin(p: float, *, random: bool, draws: int = 20, fraction: float = 0.5) -> rbl.Model:
    defenses = (AppliedDefense("coin", random=True),) if random else ()
    return rbl.Model(
        net=CoinNet(p), input_shape=(2,), defenses=defenses, draws=draws, draw_fraction=fraction
    )


def test_a_lucky_draw_never_counts_as_broken_or_robust() -> None:
    x, y = torch.rand(400, 2), torch.ones(400, dtype=torch.long)  # class 1 is right
    attack = Unchanged()
    # wrong in 20% of passes: one pass breaks ~20% of samples; 20 passes at 0.5 almost none
    one = attack(_coin(0.2, random=False), x, y, "linf:0.1", seed=0)
    many = attack(_coin(0.2, random=True), x, y, "linf:0.1", seed=0)
    assert 0.12 < float(one.success.float().mean()) < 0.28 and one.draws == 1
    assert float(many.success.float().mean()) < 0.02 and many.draws == 20
    assert float(many.clean_correct.float().mean()) > 0.98
    assert "at least 10 of 20" in many.metrics["judging"]
    # wrong in 80% of passes: one lucky pass is not robust either
    mostly = attack(_coin(0.8, random=True), x, y, "linf:0.1", seed=0)
    assert float(mostly.success.float().mean()) > 0.98
    assert float(mostly.clean_correct.float().mean()) < 0.02 and mostly.robust_accuracy < 0.02
    # a stricter fraction: success must hold in 90% of passes
    strict = attack(_coin(0.8, random=True, fraction=0.9), x, y, "linf:0.1", seed=0)
    assert float(strict.success.float().mean()) < 0.2 and strict.draw_fraction == 0.9


def test_clean_checks_judge_a_random_model_over_its_draws() -> None:
    x, y = torch.rand(400, 2), torch.ones(400, dtype=torch.long)
    correct, pred = judged_clean(_coin(0.3, random=True), x, y, seed=3)
    assert float(correct.float().mean()) > 0.9 and bool((pred == 1).float().mean() > 0.9)
    again, _ = judged_clean(_coin(0.3, random=True), x, y, seed=3)
    assert torch.equal(correct, again)
    once, _ = judged_clean(_coin(0.3, random=False), x, y, seed=3)
    assert 0.55 < float(once.float().mean()) < 0.85  # one pass: wrong in ~30% of samples


def test_judging_is_seeded_and_leaves_the_global_stream_alone() -> None:
    x, y = torch.rand(50, 2), torch.ones(50, dtype=torch.long)
    model = _coin(0.5, random=True, draws=5)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = Unchanged()(model, x, y, "linf:0.1", seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = Unchanged()(model, x, y, "linf:0.1", seed=7)
    assert torch.equal(a.success, b.success) and torch.equal(a.adv_pred, b.adv_pred)


def test_a_deterministic_model_is_called_once_per_check(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    calls: list[int] = []
    counting = dataclasses.replace(digits_cnn, net=_Counting(digits_cnn.net, calls))
    x, y = digits[0][:8], digits[1][:8]
    result = Unchanged()(counting, x, y, "linf:0.1", seed=0)
    assert len(calls) == 2  # clean logits, then the re-check: today's one pass each
    assert result.draws == 1 and "judging" not in result.metrics
    assert torch.equal(result.adv_pred, digits_cnn.logits(x).argmax(dim=1))


class _Counting(nn.Module):
    def __init__(self, net: nn.Module, calls: list[int]) -> None:
        super().__init__()
        self.net, self.calls = net, calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        out: torch.Tensor = self.net(x)
        return out

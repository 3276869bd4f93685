"""The SDA sparse attack on binary inputs: binary outputs, l0 budget, reduction, report values."""

from __future__ import annotations

import pytest
import torch
from conftest import data_dir_or_skip
from robustbench_lite.attacks._snn_metrics import spikes_per_sample
from robustbench_lite.attacks.sda import cw_loss
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.errors import DataError, UnsupportedThreatError
from robustbench_lite.report.values import result_values
from robustbench_lite.worlds.snn import LIF, SpikingNet, Surrogate, with_surrogate

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def events_case() -> tuple[rbl.Model, torch.Tensor, torch.Tensor]:
    """A seeded untrained event SNN (4 steps, 2x4x4 frames, 3 classes) and binary inputs."""
    gen = torch.Generator().manual_seed(0)
    net = SpikingNet([nn.Flatten(), nn.Linear(32, 24), LIF(), nn.Linear(24, 3)], encoding="events")
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.8)
    model = rbl.Model(net=net, name="tiny-event-snn", input_shape=(4, 2, 4, 4), num_classes=3)
    x = (torch.rand(16, 4, 2, 4, 4, generator=gen) < 0.3).float()
    y = model.logits(x).argmax(dim=1)
    return model, x, y


def _l0(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a != b).flatten(1).sum(dim=1)


def test_sda_outputs_are_binary_flips_within_budget(events_case: tuple) -> None:
    model, x, y = events_case
    result = rbl.create_attack("sda", k_init=2, max_iter=30)(model, x, y, "l0:128")
    adv = result.x_adv
    assert bool(((adv == 0) | (adv == 1)).all())
    changed = adv != x
    assert torch.equal(adv[changed], 1 - x[changed])
    assert result.success_rate > 0.5
    l0 = _l0(adv, x)
    assert bool((l0[~result.success] == 0).all())  # failures come back clean
    assert bool((l0[result.success] > 0).all())
    assert torch.equal(result.sizes["l0"], l0.double())  # measured by the base class
    values = result_values(result)
    ok = result.success & result.clean_correct
    assert values["l0_mean"] == pytest.approx(float(l0[ok].double().mean()))
    assert values["l0_median"] == float(l0[ok].double().median())
    assert values["surrogate"] == "pdsg" and "surrogate_alpha" not in values


def test_a_failed_attack_never_counts_as_l0_zero(events_case: tuple) -> None:
    """Under a 2-flip budget most samples fail and come back clean (L0 = 0): the report's
    l0_mean averages the successes only."""
    model, x, y = events_case
    tight = rbl.create_attack("sda", k_init=2, max_iter=30)(model, x, y, "l0:2", seed=1)
    l0 = _l0(tight.x_adv, x).double()
    ok = tight.success & tight.clean_correct
    failed = tight.clean_correct & ~tight.success
    assert int(ok.sum()) >= 1 and int(failed.sum()) >= 1
    values = result_values(tight)
    assert values["l0_mean"] == pytest.approx(float(l0[ok].mean()))
    assert values["l0_mean"] >= 1.0  # zeros of the failures would pull it below
    assert values["l0_mean"] > float(l0[tight.clean_correct].mean())


def test_spikes_per_sample_count_the_real_networks_spikes(events_case: tuple) -> None:
    model, x, y = events_case
    net = model.net
    with torch.no_grad():  # by hand: Flatten, Linear, LIF (Heaviside), Linear over T steps
        seq = x.transpose(0, 1)
        currents = net.layers[1](seq.flatten(2))
        expected = net.layers[2](currents).transpose(0, 1).flatten(1).sum(dim=1)
    torch.testing.assert_close(spikes_per_sample(model, x), expected.double())
    result = rbl.create_attack("sda", k_init=2, max_iter=30, surrogate="atan", alpha=3.0)(
        model, x, y, "l0:128"
    )
    values = result_values(result)
    assert values["surrogate"] == "atan(alpha=3)" and values["surrogate_alpha"] == 3.0
    assert values["spikes_per_sample"] == pytest.approx(float(expected.mean()))
    assert values["spikes_per_sample_adv"] == pytest.approx(
        float(spikes_per_sample(model, result.x_adv).mean())
    )


def test_batched_gradients_equal_batch_size_one_gradients(events_case: tuple) -> None:
    """SDA attacks a batch at once; per-sample PDSG sigma keeps each gradient as if alone."""
    model, x, y = events_case
    twin = with_surrogate(model, Surrogate("pdsg", per_sample=True)).differentiable
    xb = x[:6].clone().requires_grad_(True)
    (g_batch,) = torch.autograd.grad(cw_loss(twin(xb), y[:6]).sum(), xb)
    for i in range(6):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (g_one,) = torch.autograd.grad(cw_loss(twin(xi), y[i : i + 1]).sum(), xi)
        torch.testing.assert_close(g_batch[i : i + 1], g_one)
    shared = with_surrogate(model, "pdsg").differentiable  # batch statistics: not the same
    (g_shared,) = torch.autograd.grad(cw_loss(shared(xb), y[:6]).sum(), xb)
    assert not torch.allclose(g_shared, g_batch)


def test_reduction_keeps_every_success_and_never_adds_flips(events_case: tuple) -> None:
    model, x, y = events_case
    full = rbl.create_attack("sda", k_init=2, max_iter=30)(model, x, y, "l0:128", seed=3)
    raw = rbl.create_attack("sda", k_init=2, max_iter=30, reduction=False)(
        model, x, y, "l0:128", seed=3
    )
    assert torch.equal(full.success, raw.success)
    l0_full, l0_raw = _l0(full.x_adv, x), _l0(raw.x_adv, x)
    assert bool((l0_full <= l0_raw).all())
    assert int(l0_full.sum()) < int(l0_raw.sum())  # the reduction does remove flips here
    # the reduced example un-flips a subset of the generated flips: still relative to x
    assert bool(((full.x_adv != x) <= (raw.x_adv != x)).all())


def test_budget_turns_larger_attacks_into_clean_failures(events_case: tuple) -> None:
    model, x, y = events_case
    loose = rbl.create_attack("sda", k_init=2, max_iter=30)(model, x, y, "l0:128", seed=1)
    tight = rbl.create_attack("sda", k_init=2, max_iter=30)(model, x, y, "l0:2", seed=1)
    l0_loose, l0_tight = _l0(loose.x_adv, x), _l0(tight.x_adv, x)
    assert bool((l0_tight <= 2).all())
    small = loose.success & (l0_loose <= 2)
    assert torch.equal(tight.success, small)
    assert tight.metrics["over_budget"] == float((loose.success & (l0_loose > 2)).sum())


def test_misclassified_samples_are_left_alone(events_case: tuple) -> None:
    model, x, y = events_case
    wrong = y.clone()
    wrong[:4] = (y[:4] + 1) % 3
    result = rbl.create_attack("sda", k_init=2, max_iter=10)(model, x, wrong, "l0:128")
    assert torch.equal(result.x_adv[:4], x[:4])
    assert not bool(result.clean_correct[:4].any())


def test_sda_rejects_non_binary_inputs_and_other_threats(events_case: tuple) -> None:
    model, x, y = events_case
    with pytest.raises(DataError, match="binary"):
        rbl.create_attack("sda")(model, x * 0.5, y, "l0:10")
    with pytest.raises(UnsupportedThreatError, match="l0/untargeted"):
        rbl.create_attack("sda")(model, x, y, "linf:0.1")


@pytest.mark.data
def test_sda_on_nmnist_snn_beats_the_naive_topk_flip() -> None:
    """Measured: on the first 20 test recordings SDA needs ~29 flips on average, naive ~46."""
    data_dir_or_skip("nmnist_small_slayer")
    model = rbl.load_model("zoo:nmnist-snn")
    x, y = rbl.load_data("nmnist", split="test", n=12)
    sda = rbl.create_attack("sda", k_init=4, max_iter=50)(model, x, y, "l0:1000")
    naive = rbl.create_attack("sda", k_init=4, max_iter=50, fd_filter=False, reduction=False)(
        model, x, y, "l0:1000"
    )
    assert sda.success_rate >= 0.9
    assert bool(((sda.x_adv == 0) | (sda.x_adv == 1)).all())
    assert result_values(sda)["l0_mean"] < result_values(naive)["l0_mean"]

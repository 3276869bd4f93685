"""LIF dynamics, surrogate gradients (PDSG), surrogate twins and snn_fgsm / snn_pgd."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.errors import ParameterError, UnsupportedLayerError
from robustbench_lite.worlds.snn import (
    LIF,
    SpikingNet,
    Surrogate,
    lif_layers,
    pdsg_derivative,
    with_surrogate,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _gauss(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The PDSG formula written out independently: N(x; sigma/2, sigma^2)."""
    z = (x - sigma / 2) / sigma
    return torch.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))


def test_lif_forward_matches_hand_computed_dynamics() -> None:
    # neuron 0: U = .75, 1.125 (spike, reset), 1.5 (spike), .2 ; neuron 1: U_1 = 2/2 = V_th fires
    x = torch.tensor([[1.5, 2.0], [1.5, 0.0], [3.0, 1.9], [0.4, 0.0]])[:, None, :]  # [T, N=1, 2]
    s = LIF()(x)
    assert s[:, 0, 0].tolist() == [0.0, 1.0, 1.0, 0.0]
    # neuron 1: U = 1 (spike, H = 0), 0, .95, .475
    assert s[:, 0, 1].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_pdsg_backward_is_gaussian_with_per_channel_sigma_of_current_input() -> None:
    gen = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.5, 1.0, 3.0])[None, None, :, None, None]  # channels differ in spread
    x = (torch.randn(2, 4, 3, 5, 5, generator=gen) * scales + 1.5).requires_grad_(True)
    s = LIF(surrogate=Surrogate("pdsg"))(x)
    (g,) = torch.autograd.grad(s[1].sum(), x)
    x = x.detach()
    u1 = x[0] / 2
    h1 = u1 * (u1 < 1)
    u2 = h1 + (x[1] - h1) / 2
    sigma2 = torch.stack([u1, u2]).std(dim=(0, 1, 3, 4), keepdim=True)[
        0
    ]  # over t <= 2, batch, H, W
    assert sigma2.flatten().unique().numel() == 3
    torch.testing.assert_close(g[1], _gauss(u2 - 1, sigma2) / 2)
    (g1,) = torch.autograd.grad(
        LIF(surrogate=Surrogate("pdsg"))(x.requires_grad_(True))[0].sum(), x
    )
    sigma1 = u1.std(dim=(0, 2, 3), keepdim=True)
    torch.testing.assert_close(g1[0], _gauss(u1 - 1, sigma1) / 2)


def test_pdsg_sigma_depends_on_the_input_and_is_per_feature_for_linear_layers() -> None:
    x = torch.tensor([[[1.0, 4.0], [3.0, 0.0], [2.2, 2.0]]]).requires_grad_(True)  # [T=1, N=3, F=2]
    (g,) = torch.autograd.grad(LIF(surrogate=Surrogate("pdsg"))(x).sum(), x)
    u = x.detach()[0] / 2
    sigma = u.std(dim=0, keepdim=True)
    torch.testing.assert_close(g[0], _gauss(u - 1, sigma) / 2)
    torch.testing.assert_close(pdsg_derivative(u - 1, sigma), _gauss(u - 1, sigma))
    # per_sample: each sample gets the sigma it would have in a batch of one (here: 1 value -> 1)
    (gs,) = torch.autograd.grad(LIF(surrogate=Surrogate("pdsg", per_sample=True))(x).sum(), x)
    torch.testing.assert_close(gs[0], _gauss(u - 1, torch.ones_like(u)) / 2)


@pytest.mark.parametrize(
    "kind,alpha,formula",
    [
        ("atan", 2.0, lambda v, a: (a / 2) / (1 + (math.pi / 2 * a * v) ** 2)),
        ("sigmoid", 4.0, lambda v, a: a * torch.sigmoid(a * v) * (1 - torch.sigmoid(a * v))),
        ("ste", 1.0, lambda v, a: torch.ones_like(v)),
    ],
)
def test_fixed_surrogates_backward(kind: str, alpha: float, formula: object) -> None:
    x = torch.linspace(0.5, 3.5, 13)[None, :].requires_grad_(True)  # [T=1, N=13]
    (g,) = torch.autograd.grad(LIF(surrogate=Surrogate(kind, alpha))(x[:, :, None]).sum(), x)
    torch.testing.assert_close(g, formula(x.detach() / 2 - 1, alpha) / 2)  # type: ignore[operator]


def test_surrogate_rejects_bad_names_and_alphas() -> None:
    with pytest.raises(ParameterError, match="choose one of"):
        Surrogate("tanh")
    with pytest.raises(ParameterError, match="alpha"):
        Surrogate("atan", -1.0)


@pytest.fixture(scope="module")
def digits_snn() -> rbl.Model:
    return rbl.load_model("zoo:digits-snn")


def test_digits_snn_is_trained_and_state_resets_between_calls(
    digits_snn: rbl.Model, digits: tuple
) -> None:
    x, y = digits
    assert digits_snn.meta["clean_accuracy"] > 0.9
    first = digits_snn.logits(x)
    torch.testing.assert_close(digits_snn.logits(x), first)  # no state carried over
    torch.testing.assert_close(digits_snn.logits(x[:1]), first[:1])  # nor across the batch
    assert float((first.argmax(1) == y).float().mean()) > 0.9


def test_twin_has_gradients_and_the_real_model_has_none(
    digits_snn: rbl.Model, digits: tuple
) -> None:
    x = digits[0][:16].clone().requires_grad_(True)
    out = digits_snn(x)
    (g_real,) = torch.autograd.grad(out.sum(), x)
    assert not g_real.any()  # Heaviside's true derivative
    for kind in ("pdsg", "atan", "sigmoid", "ste"):
        model = with_surrogate(digits_snn, kind)
        assert model.surrogate is not None and kind in model.surrogate.name
        twin_out = model.differentiable(x)
        torch.testing.assert_close(twin_out, out)  # same forward (Heaviside)
        (g,) = torch.autograd.grad(twin_out.sum(), x)
        assert g.abs().sum() > 0, kind


def test_with_surrogate_rejects_a_non_spiking_model(tiny_mlp: rbl.Model) -> None:
    with pytest.raises(UnsupportedLayerError, match="no LIF layers"):
        with_surrogate(tiny_mlp, "pdsg")


def test_spiking_net_events_encoding_shapes() -> None:
    net = SpikingNet([nn.Flatten(), nn.Linear(8, 5), LIF(), nn.Linear(5, 3)], encoding="events")
    assert net(torch.ones(4, 6, 2, 2, 2)).shape == (4, 3)


def test_snn_pgd_pdsg_beats_a_narrow_mismatched_surrogate(
    digits_snn: rbl.Model, digits: tuple
) -> None:
    """Measured on the real trained model (200 digits, eps 32/255): PDSG ~0.53 robust
    accuracy, matched ATan(2) ~0.46, narrow ATan(10) ~0.68, STE ~0.91."""
    x, y = digits
    acc = {}
    for name, kw in {
        "pdsg": {},
        "narrow": {"surrogate": "atan", "alpha": 10.0},
        "ste": {"surrogate": "ste"},
    }.items():
        result = rbl.create_attack("snn_pgd", **kw)(digits_snn, x, y, "linf:32/255")
        assert bool(((result.x_adv - x).abs() <= 32 / 255 + 1e-6).all())
        acc[name] = result.robust_accuracy
    assert acc["pdsg"] < acc["narrow"] - 0.05
    assert acc["pdsg"] < acc["ste"] - 0.2
    assert acc["pdsg"] < 0.7


def test_snn_fgsm_reduces_accuracy_and_plain_fgsm_cannot(
    digits_snn: rbl.Model, digits: tuple
) -> None:
    x, y = digits
    result = rbl.create_attack("snn_fgsm", surrogate="pdsg")(digits_snn, x, y, "linf:64/255")
    assert bool(((result.x_adv - x).abs() <= 64 / 255 + 1e-6).all())
    assert result.robust_accuracy < result.clean_accuracy - 0.2
    real_only = replace(digits_snn, surrogate=None)
    plain = rbl.create_attack("fgsm")(real_only, x, y, "linf:64/255")  # zero gradient: no step
    assert torch.equal(plain.x_adv, x) and plain.robust_accuracy == plain.clean_accuracy
    # the zoo model carries a PDSG twin, so the generic fgsm attacks through it
    generic = rbl.create_attack("fgsm")(digits_snn, x, y, "linf:64/255")
    assert generic.robust_accuracy == pytest.approx(result.robust_accuracy)


def test_zoo_snn_carries_a_pdsg_twin_and_fires_with_heaviside(digits_snn: rbl.Model) -> None:
    assert digits_snn.surrogate is not None
    assert {layer.surrogate for layer in lif_layers(digits_snn.net)} == {None}
    assert {layer.surrogate for layer in lif_layers(digits_snn.surrogate.net)} == {
        Surrogate("pdsg")
    }


def test_snn_attack_parameters_are_checked() -> None:
    with pytest.raises(rbl.RobustbenchLiteError, match="choose one of atan"):
        rbl.create_attack("snn_pgd", surrogate="relu")
    with pytest.raises(rbl.RobustbenchLiteError, match="alpha"):
        rbl.create_attack("snn_fgsm", surrogate="atan", alpha=0.0)

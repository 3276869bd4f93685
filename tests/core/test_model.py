"""Model: normalization inside the model, output checks, input checks, eval mode, surrogates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import robustbench_lite as rbl


class Echo(nn.Module):
    """Returns its (flattened) input as 'logits', so tests see exactly what the net received."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class Constant(nn.Module):
    def __init__(self, value: float, width: int = 3) -> None:
        super().__init__()
        self.value, self.width = value, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], self.width), self.value)


def test_normalization_happens_inside_the_model() -> None:
    model = rbl.Model(net=Echo(), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = torch.rand(4, 3, 2, 2)
    out = model(x).reshape(4, 3, 2, 2)
    mean = torch.tensor([0.5, 0.25, 0.0]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 2.0]).reshape(1, 3, 1, 1)
    assert torch.allclose(out, (x - mean) / std)
    x.requires_grad_(True)
    model(x).sum().backward()  # gradients flow through the normalization to the attack's input
    assert x.grad is not None and torch.allclose(x.grad, (1 / std).expand(4, 3, 2, 2))
    assert torch.equal(rbl.Model(net=Echo())(x.detach()), x.detach().flatten(1))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"bounds": (1.0, 0.0)}, "lo must be below hi"),
        ({"bounds": (0.0, 0.0)}, "lo must be below hi"),
        ({"mean": (0.5,)}, "needs both mean and std"),
        ({"mean": (0.5,), "std": (0.0,)}, "every entry must be > 0"),
    ],
)
def test_bad_construction(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(rbl.DataError, match=needle):
        rbl.Model(net=Echo(), **kwargs)  # type: ignore[arg-type]


def test_eval_mode_and_training_warning() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    net.train()
    model = rbl.Model(net=net)
    assert not net.training  # put in eval mode on construction
    net.train()
    with pytest.warns(UserWarning, match="training mode; calling .eval"):
        model(torch.rand(3, 2))
    assert not net.training
    x = torch.rand(50, 2)
    assert torch.equal(model(x), model(x))  # dropout is off


@pytest.mark.parametrize(
    ("value", "needle"), [(float("nan"), "NaN or inf"), (float("inf"), "NaN or inf")]
)
def test_non_finite_logits_are_refused(value: float, needle: str) -> None:
    model = rbl.Model(net=Constant(value), name="broken")
    with pytest.raises(
        rbl.ModelOutputError, match=f"broken returned {needle} logits for 4 of 4 samples"
    ):
        model.logits(torch.rand(4, 2))


def test_wrong_output_shape_is_refused() -> None:
    with pytest.raises(rbl.ModelOutputError, match=r"shape \(4, 3, 1\)"):
        rbl.Model(net=nn.Unflatten(1, (3, 1))).logits(torch.rand(4, 3))


def test_logits_batches_agree_with_one_pass() -> None:
    torch.manual_seed(0)
    model = rbl.Model(net=nn.Linear(5, 3), input_shape=(5,))
    x = torch.rand(37, 5)
    with torch.no_grad():
        full = model(x)
    assert torch.allclose(model.logits(x, batch_size=8), full, atol=1e-6)
    assert not model.logits(x).requires_grad


def test_input_checks() -> None:
    model = rbl.Model(net=Echo(), input_shape=(1, 2, 2), name="m")
    with pytest.raises(
        rbl.DataError, match=r"shape \(3, 4\) does not fit m, which takes \(N, 1, 2, 2\)"
    ):
        model.logits(torch.rand(3, 4))
    with pytest.raises(rbl.DataError, match="outside m's bounds"):
        model.logits(torch.rand(3, 1, 2, 2) + 1.5)
    bad = torch.rand(3, 1, 2, 2)
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(rbl.DataError, match="NaN or inf in 1 of 3 samples"):
        model.logits(bad)
    unknown_shape = rbl.Model(net=nn.Linear(4, 2), name="lin")
    with pytest.raises(rbl.DataError, match=r"data of shape \(3, 5\) does not fit lin"):
        unknown_shape.logits(torch.rand(3, 5))


def test_surrogate_device_and_defense() -> None:
    hard = rbl.Model(net=Echo(), name="hard")
    soft = rbl.Model(net=Echo(), name="soft")
    with_surrogate = rbl.Model(net=Echo(), surrogate=soft)
    assert with_surrogate.differentiable is soft and hard.differentiable is hard
    moved = with_surrogate.to("cpu")
    assert moved.device == torch.device("cpu") and moved.surrogate is not None

    class Halve(rbl.Defense):
        def apply(self, model: rbl.Model) -> rbl.Model:
            return rbl.Model(
                net=nn.Sequential(nn.Flatten(), nn.Identity()), bounds=model.bounds, name="halved"
            )

    assert hard.with_defense(Halve()).name == "halved"


def test_to_copies_the_network_and_never_moves_the_callers() -> None:
    net = nn.Linear(4, 3)
    surrogate = rbl.Model(net=nn.Linear(4, 3), name="soft")
    model = rbl.Model(net=net, surrogate=surrogate)
    weight = net.weight.detach().clone()
    assert model.to("cpu") is model  # already there: nothing to copy

    moved = model.to("meta")  # a second device that every torch build has
    assert moved.net is not net and moved.net.weight.device.type == "meta"
    assert moved.surrogate is not None and moved.surrogate.net.weight.device.type == "meta"
    assert net.weight.device.type == "cpu" and torch.equal(net.weight, weight)
    assert surrogate.net.weight.device.type == "cpu"
    assert model.net is net and model.device == torch.device("cpu")

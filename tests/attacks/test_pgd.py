"""PGD and FGSM: threat-set membership, re-checked success, and exact minimal distances on a linear model.

A binary linear classifier ``sign(w.x + b)`` has minimal adversarial distance
``|w.x + b| / ||w||_2`` under l2 and ``|w.x + b| / ||w||_1`` under linf (Hoelder duality), as long
as the box bounds do not bind. PGD must break every sample at 1% above that distance and no
sample at 1% below it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import robustbench_lite as rbl

DIM = 16


class BinaryLinear(nn.Module):
    """Two logits ``(-s/2, s/2)`` with ``s = w.x + b``: class 1 iff ``w.x + b > 0``."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([-s / 2, s / 2], dim=1)


@pytest.fixture(scope="module")
def linear() -> tuple[rbl.Model, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(DIM, generator=gen, dtype=torch.float64).float()
    model = rbl.Model(
        net=BinaryLinear(w, 0.3), bounds=(-50.0, 50.0), name="linear", input_shape=(DIM,)
    )
    x = torch.rand(32, DIM, generator=gen) * 2 - 1
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _min_distance(model: rbl.Model, x: torch.Tensor, dual: float) -> torch.Tensor:
    net = model.net
    assert isinstance(net, BinaryLinear)
    with torch.no_grad():
        margin = (x.double() @ net.w.double() + net.b.double()).abs()
        return margin / net.w.double().norm(p=dual)


def _per_sample_eps(
    attack: rbl.Attack,
    model: rbl.Model,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    eps: torch.Tensor,
    goal: str = "",
) -> torch.Tensor:
    """Attack each sample under its own budget; returns the (N,) success flags."""
    flags = []
    for i in range(len(y)):
        threat = rbl.ThreatModel.parse(f"{norm}:{float(eps[i])!r}{goal}")
        target = (1 - y[i : i + 1]) if goal else None
        flags.append(
            attack(model, x[i : i + 1], y[i : i + 1], threat, target=target, seed=i).success
        )
    return torch.cat(flags)


@pytest.mark.parametrize(("norm", "dual"), [("linf", 1.0), ("l2", 2.0)])
@pytest.mark.parametrize("attack_name", ["pgd", "fgsm"])
@pytest.mark.parametrize("goal", ["", ":targeted"])
def test_linear_model_broken_just_above_the_minimal_distance(
    linear: tuple[rbl.Model, torch.Tensor, torch.Tensor],
    norm: str,
    dual: float,
    attack_name: str,
    goal: str,
) -> None:
    model, x, y = linear
    d = _min_distance(model, x, dual)
    assert float(x.abs().max()) + float(d.max()) * 1.01 < 50  # the box never binds
    params = {"steps": 40, "random_start": False} if attack_name == "pgd" else {}
    attack = rbl.create_attack(attack_name, **params)
    above = _per_sample_eps(attack, model, x, y, norm, d * 1.01, goal)
    below = _per_sample_eps(attack, model, x, y, norm, d * 0.99, goal)
    assert bool(above.all()), (
        f"{attack_name} missed {int((~above).sum())} samples at 1.01 x the distance"
    )
    assert not bool(below.any()), "a success below the minimal adversarial distance is impossible"


def test_pgd_random_start_and_restarts_break_the_linear_model_at_the_bound(
    linear: tuple[rbl.Model, torch.Tensor, torch.Tensor],
) -> None:
    model, x, y = linear
    d = _min_distance(model, x, 1.0)
    attack = rbl.create_attack("pgd", steps=20, restarts=3, random_start=True)
    assert bool(_per_sample_eps(attack, model, x, y, "linf", d * 1.01).all())


@pytest.mark.parametrize("spec", ["linf:0.1", "l2:1.0", "linf:0.2:targeted", "l2:2.0:targeted"])
@pytest.mark.parametrize("restarts", [1, 3])
def test_pgd_output_is_inside_the_threat_set_and_rechecked(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor], spec: str, restarts: int
) -> None:
    x, y = digits[0][:32], digits[1][:32]
    threat = rbl.ThreatModel.parse(spec)
    result = rbl.create_attack("pgd", steps=10, restarts=restarts)(digits_cnn, x, y, threat, seed=1)
    x_adv = result.x_adv
    assert isinstance(x_adv, torch.Tensor)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    dist = threat.distance(x, x_adv)
    assert bool((dist <= threat.eps * (1 + 1e-5) + 1e-6).all())
    with torch.no_grad():
        logits = digits_cnn.net(x_adv)
    assert torch.equal(result.success, threat.is_success(logits, y, result.target))
    assert result.success.any(), "PGD should break some digits at these budgets"
    if threat.goal is rbl.Goal.TARGETED:
        assert result.target is not None and not bool((result.target == y).any())


def test_pgd_restarts_never_hurt_and_seed_is_reproducible(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits[0][:100], digits[1][:100]
    one = rbl.create_attack("pgd", steps=5)(digits_cnn, x, y, "linf:0.06", seed=3)
    again = rbl.create_attack("pgd", steps=5)(digits_cnn, x, y, "linf:0.06", seed=3)
    assert torch.equal(one.x_adv, again.x_adv)  # type: ignore[arg-type]
    many = rbl.create_attack("pgd", steps=5, restarts=4)(digits_cnn, x, y, "linf:0.06", seed=3)
    assert bool(
        (many.success | ~one.success).all()
    )  # restart 0 is the same run, later ones only add
    assert many.success.sum() >= one.success.sum()


def test_pgd_is_stronger_than_fgsm_and_eps_zero_breaks_nothing(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits
    pgd = rbl.create_attack("pgd", steps=20)(digits_cnn, x, y, "linf:0.1")
    fgsm = rbl.create_attack("fgsm")(digits_cnn, x, y, "linf:0.1")
    assert pgd.robust_accuracy <= fgsm.robust_accuracy
    assert pgd.robust_accuracy < 0.8 * pgd.clean_accuracy
    zero = rbl.create_attack("pgd", steps=3)(digits_cnn, x, y, "linf:0")
    assert torch.equal(zero.x_adv, x)  # type: ignore[arg-type]
    assert zero.robust_accuracy == zero.clean_accuracy


def test_pgd_rejects_bad_parameters() -> None:
    for bad in ({"steps": 0}, {"loss": "hinge"}, {"step_size": -1.0}):
        with pytest.raises(rbl.RegistryError):
            rbl.create_attack("pgd", **bad)

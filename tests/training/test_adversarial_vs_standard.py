"""A tiny adversarially trained net is more robust than its standard twin (real training).

The twins share the architecture, seed, data, optimiser and schedule; only the trainer differs.
Robustness is measured by the package's own ``pgd`` attack (PGD-20, independent of the PGD the
trainer uses, results re-checked on the model inside the threat set) on held-out digits.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.training.loop import OptimizerSpec, fit
from robustbench_lite.training.registry import create_schedule, create_trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _trained(trainer: str, **params: object) -> rbl.Model:
    x, y = rbl.load_data("digits", split="train")
    torch.manual_seed(0)
    net = _mlp()
    records = fit(
        net,
        x,
        y,
        trainer=create_trainer(trainer, **params),
        schedule=create_schedule("one-cycle"),
        optimizer=OptimizerSpec("adam", 0.02),
        epochs=10,
        batch_size=64,
    )
    assert len(records) == 10 and records[-1].loss < records[0].loss
    return rbl.Model(net=net, bounds=(0.0, 1.0), input_shape=(1, 8, 8), num_classes=10)


@pytest.fixture(scope="module")
def standard_twin() -> rbl.Model:
    return _trained("standard")


@pytest.mark.parametrize("trainer", ["pgd-at", "trades"])
def test_adversarial_training_beats_its_standard_twin(
    trainer: str, standard_twin: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits
    pgd = rbl.create_attack("pgd", steps=20)
    plain = pgd(standard_twin, x, y, "linf:0.1")
    robust = pgd(_trained(trainer, threat="linf:0.1", steps=5), x, y, "linf:0.1")
    assert robust.clean_accuracy >= 0.85  # still a digits classifier
    assert robust.robust_accuracy >= 0.6
    assert robust.robust_accuracy >= plain.robust_accuracy + 0.15


def test_training_examples_stay_in_the_ball_and_the_bounds() -> None:
    from robustbench_lite.training.objectives import pgd_for_training

    x, y = rbl.load_data("digits", split="test", n=64)
    torch.manual_seed(0)
    net = _mlp()
    for norm, eps in (("linf", 0.1), ("l2", 0.5)):
        x_adv = pgd_for_training(net, x, y, eps=eps, steps=3, bounds=(0.0, 1.0), norm=norm)
        moved = (x_adv - x).flatten(1)
        size = moved.abs().amax(1) if norm == "linf" else moved.norm(dim=1)
        assert float(size.max()) <= eps + 1e-5 and float(size.max()) > 0
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_gaussian_trainer_trains_under_noise() -> None:
    """Noise augmentation (for randomized smoothing): accuracy under its own noise stays high."""
    model = _trained("gaussian", sigma=0.25)
    x, y = rbl.load_data("digits", split="test", n=200)
    trainer = create_trainer("gaussian", sigma=0.25)
    assert trainer.validation_accuracy(model.net, x, y, (0.0, 1.0), 0) >= 0.8

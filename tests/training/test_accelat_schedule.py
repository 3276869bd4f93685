"""The AccelAT schedule reacts to the gradient of validation accuracy as the paper's code does.

Nikfam et al. (2022), ``function_callback.py``: after each epoch the mean of the last ``window``
validation accuracies is compared with the previous epoch's mean; when more than ``window``
means are known, the quiet time since the last change exceeds ``cooldown``, and the rise is
below ``threshold``, the rate is multiplied by ``factor`` (never below ``min_lr``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lite.core.errors import ParameterError
from robustbench_lite.training.loop import OptimizerSpec, fit
from robustbench_lite.training.registry import create_schedule, create_trainer
from robustbench_lite.training.schedules import AccelATRule


def _run(accuracies: list[float], **kw: float) -> AccelATRule:
    rule = AccelATRule(0.1, **kw)  # type: ignore[arg-type]
    for acc in accuracies:
        rule.update(acc)
    return rule


def test_rising_accuracy_keeps_the_rate() -> None:
    rule = _run([0.1 + 0.02 * i for i in range(30)])
    assert rule.decays == [] and rule.lr == 0.1
    assert all(g >= 0.005 for g in rule.gradients)


def test_flat_accuracy_lowers_the_rate_once_per_cooldown() -> None:
    rule = _run([0.5] * 18)
    # more than `window` (5) means are needed first: the 7th epoch (index 6) is the first
    # decision; then a quiet time of `cooldown` (5) epochs separates the next ones.
    assert rule.decays == [6, 11, 16]
    assert rule.lr == pytest.approx(0.1 * 0.8**3)


def test_the_rate_falls_when_the_rise_stops() -> None:
    rising = [0.1 + 0.05 * i for i in range(12)]
    rule = _run(rising + [rising[-1]] * 12)
    assert rule.decays and rule.decays[0] >= 12  # never while it was rising by 0.05/epoch
    # the first decision on the plateau comes when the moving mean's rise drops below 0.005,
    # i.e. once the 5-epoch window holds only plateau values (epoch 12 + 4)
    assert rule.decays[0] == 16
    assert rule.gradients[rule.decays[0] - 1] < 0.005 <= rule.gradients[rule.decays[0] - 2]


def test_threshold_factor_cooldown_and_floor() -> None:
    slow = [0.3 + 0.003 * i for i in range(20)]  # rises 0.003/epoch
    assert _run(slow, threshold=0.005).decays  # below the threshold: lowered
    assert _run(slow, threshold=0.002).decays == []  # above it: kept
    assert _run([0.5] * 18, cooldown=2).decays == [6, 8, 10, 12, 14, 16]
    floored = _run([0.5] * 60, factor=0.1, min_lr=1e-3)
    assert floored.lr == 1e-3 and len(floored.decays) >= 3


def test_bad_parameters_are_refused_by_name() -> None:
    with pytest.raises(ParameterError, match="factor"):
        create_schedule("accelat", factor=1.5)
    with pytest.raises(ParameterError, match="window"):
        create_schedule("accelat", window=0)
    with pytest.raises(ParameterError, match="validation"):
        fit(
            nn.Linear(2, 2),
            torch.zeros(4, 2),
            torch.zeros(4, dtype=torch.long),
            trainer=create_trainer("standard"),
            schedule=create_schedule("accelat"),
            optimizer=OptimizerSpec(),
            epochs=1,
            batch_size=2,
        )


def test_the_training_loop_applies_the_decisions_to_the_optimizer() -> None:
    """With real training on a tiny problem that saturates, the loop's learning rate follows
    the rule's decisions epoch by epoch (records' lr = the rate the epoch ran with)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 4, generator=gen)
    y = (x[:, 0] > 0.5).long()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    schedule = create_schedule("accelat", window=2, cooldown=1, threshold=0.01, factor=0.5)
    records = fit(
        net,
        x,
        y,
        trainer=create_trainer("standard"),
        schedule=schedule,
        optimizer=OptimizerSpec("sgd", 0.5),
        epochs=20,
        batch_size=16,
        validation=(x[:32], y[:32]),
    )
    replay = schedule.rule(0.5)
    for record in records:
        assert record.lr == pytest.approx(replay.lr)
        assert record.val_accuracy is not None
        assert record.next_lr == pytest.approx(replay.update(record.val_accuracy))
    assert replay.decays  # the accuracy saturated, so the rate was lowered
    assert records[-1].next_lr < records[0].lr

"""Verifier worker processes get their job as arguments: verdicts agree under ``spawn``."""

from __future__ import annotations

import multiprocessing
import pickle
import time

import pytest
import torch
from robustbench_lite.verify import complete, portfolio
from robustbench_lite.verify.layers import lower_model
from robustbench_lite.verify.properties import robustness_property
from verify_helpers import DECIDE_S, as_model, random_mlp

import robustbench_lite as rbl
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Status


@pytest.fixture
def spawn_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers start with ``spawn``: they see no parent memory, only their arguments."""
    spawn = multiprocessing.get_context("spawn")
    monkeypatch.setattr(complete, "worker_context", lambda: spawn)
    monkeypatch.setattr(portfolio, "worker_context", lambda: spawn)


def _problem() -> tuple[rbl.Model, torch.Tensor, torch.Tensor]:
    model = as_model(random_mlp([2, 12, 12, 3], seed=11), 2)
    x = torch.rand(3, 2, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    return model, x, model(x).argmax(1)


@pytest.mark.slow
def test_verdicts_agree_under_spawn(spawn_only: None) -> None:
    model, x, y = _problem()
    serial = rbl.create_verifier("complete", workers=1).verify(
        model, x, y, "linf:0.08", timeout_s=DECIDE_S
    )
    assert Status.UNKNOWN not in serial.per_sample
    # many samples: one worker process per sample
    many = rbl.create_verifier("complete", workers=2).verify(
        model, x, y, "linf:0.08", timeout_s=DECIDE_S
    )
    assert many.per_sample == serial.per_sample


@pytest.mark.slow
def test_branching_rules_race_in_spawned_workers(spawn_only: None) -> None:
    model, x, y = _problem()
    net = lower_model(model)
    for i in range(len(y)):
        prop = robustness_property(
            x[i].double().numpy(), int(y[i]), 3, ThreatModel.parse("linf:0.08"), model.bounds
        )
        check = complete.Float32Check(model, prop)
        deadline = time.monotonic() + 60
        serial, _ = portfolio.serial_portfolio(net, prop.cases[0], check, deadline)
        raced = portfolio.parallel_portfolio(
            net, prop.cases[0], check, deadline, dict.fromkeys(portfolio.RULES)
        )
        assert raced.status == serial.status and raced.status in ("sat", "unsat")


def test_a_job_that_cannot_be_pickled_runs_in_the_parent() -> None:
    model, x, y = _problem()
    net = random_mlp([2, 12, 12, 3], seed=11)
    net.on_forward = lambda: None  # type: ignore[assignment]  # a lambda cannot be pickled
    local = as_model(net, 2)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(local)
    res = rbl.create_verifier("complete", workers=2).verify(
        local, x, y, "linf:0.08", timeout_s=DECIDE_S
    )
    reference = rbl.create_verifier("complete", workers=1).verify(
        model, x, y, "linf:0.08", timeout_s=DECIDE_S
    )
    assert res.per_sample == reference.per_sample

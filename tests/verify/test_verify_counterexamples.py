"""Every FALSIFIED carries a counterexample that really is one; unconfirmed witnesses never count."""

from __future__ import annotations

import numpy as np
import torch
from robustbench_lite.verify import complete
from robustbench_lite.verify.properties import Case, Property
from verify_helpers import DECIDE_S, as_model, random_mlp

import robustbench_lite as rbl
from robustbench_lite.core.types import Status


def _sat_property() -> Property:
    return Property(
        2,
        2,
        (
            Case(
                np.array([-1.0, -1.0]),
                np.array([1.0, 1.0]),
                ((np.array([[1.0, -1.0]]), np.array([1e6])),),
            ),
        ),
    )


def test_float32_point_stays_in_box() -> None:
    lo, hi = np.array([0.1, -0.3]), np.array([0.1000000001, 0.7])
    x32 = complete.to_float32_in_box(np.array([0.1000000001, 0.7]), lo, hi)
    assert x32 is None or (
        (x32.astype(np.float64) >= lo).all() and (x32.astype(np.float64) <= hi).all()
    )
    # 0.1 has no float32 representation, so a box that is exactly the point 0.1 has no float32 point
    assert complete.to_float32_in_box(np.array([0.1]), np.array([0.1]), np.array([0.1])) is None
    assert complete.to_float32_in_box(np.array([0.5]), np.array([0.5]), np.array([0.5])) is not None


def test_rejected_witnesses_are_never_falsified(monkeypatch: object) -> None:
    model = as_model(random_mlp([2, 5, 2], seed=2), 2)
    monkeypatch.setattr(complete, "Float32Check", lambda model, prop: lambda x: None)  # type: ignore[attr-defined]
    res = rbl.create_verifier("complete", workers=1).verify_property(
        model, _sat_property(), timeout_s=5
    )
    assert res.status is Status.UNKNOWN and res.x is None


def test_counterexamples_are_rechecked_in_float32() -> None:
    model = as_model(random_mlp([2, 5, 2], seed=2), 2)
    res = rbl.create_verifier("complete", workers=1).verify_property(
        model, _sat_property(), timeout_s=DECIDE_S
    )
    assert res.status is Status.FALSIFIED
    x32 = torch.tensor(res.x, dtype=torch.float32)
    assert np.array_equal(x32.double().numpy(), res.x)  # exactly a float32 point
    assert _sat_property().holds_at(res.x, model(x32[None]).detach().double().numpy()[0])

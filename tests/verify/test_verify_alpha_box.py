"""alpha-CROWN bounds on input boxes (verify/alpha_box.py) and input splitting that uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from robustbench_lite.verify.alpha_box import alpha_spec_lb, dense_chain
from robustbench_lite.verify.bounds import propagate
from robustbench_lite.verify.branch import input_split
from robustbench_lite.verify.complete import Float32Check
from robustbench_lite.verify.layers import lower_model
from robustbench_lite.verify.properties import Case, Property
from verify_helpers import as_model, exact_answer, random_mlp


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("from_cheap", [False, True], ids=["crown_layers", "cheap_layers"])
def test_alpha_bounds_stay_below_samples_and_beat_the_cheap_bound_in_total(
    seed: int, from_cheap: bool
) -> None:
    mlp = random_mlp([3, 16, 16, 16, 4], seed)
    net = lower_model(as_model(mlp, 3))
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1, 0.5, (12, 3))
    hi = lo + rng.uniform(0.05, 0.8, (12, 3))
    C = rng.normal(size=(3, 4))
    pre = propagate(net, lo, hi, C).pre if from_cheap else None
    lb = alpha_spec_lb(dense_chain(net), lo, hi, C, pre=pre)
    for i in range(lo.shape[0]):
        x = rng.uniform(lo[i], hi[i], (2000, 3))
        corners = np.where(rng.random((64, 3)) < 0.5, lo[i], hi[i])
        pts = np.concatenate([x, corners])
        with torch.no_grad():
            y = mlp(torch.from_numpy(pts).float()).double().numpy()
        assert (lb[i] <= (y @ C.T).min(axis=0) + 1e-5).all()
    cheap = propagate(net, lo, hi, C).spec_lb
    assert lb.sum() > cheap.sum()  # optimised slopes: tighter over the batch


@pytest.mark.parametrize("seed", [3, 4, 5])
@pytest.mark.parametrize("layer_steps", [0, 5])
def test_input_split_with_alpha_matches_the_exact_answer(seed: int, layer_steps: int) -> None:
    mlp = random_mlp([2, 4, 4, 2], seed)
    model = as_model(mlp, 2)
    net = lower_model(model)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    row = np.array([1.0, -1.0])
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 61), np.linspace(-1, 1, 61)), -1)
    with torch.no_grad():
        vals = mlp(torch.from_numpy(grid.reshape(-1, 2)).float()).double().numpy() @ row
    for t in (float(vals.min()) - 0.02, float(vals.min()) + 0.02):
        prop = Property(2, 2, (Case(lo, hi, ((row[None], np.array([t])),)),))
        out = input_split(
            net,
            prop.cases[0],
            Float32Check(model, prop),
            1e18,
            split_rule="best" if layer_steps else "smear",
            alpha=True,
            alpha_layer_steps=layer_steps,
        )
        truth = exact_answer(mlp, lo, hi, row[None], np.array([t]))
        assert out.status == ("sat" if truth else "unsat")
        if out.status == "sat":
            assert out.x is not None
            with torch.no_grad():
                y = mlp(torch.from_numpy(out.x).float()[None]).double().numpy()[0]
            assert prop.holds_at(out.x, y)

"""QuadAttack: the batched QP against scipy, the feature split, and the attack on real models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from robustbench_lite.attacks._feature_split import split_model
from robustbench_lite.attacks._qp import (
    ProjectionQP,
    check_feasible,
    project_topk,
    topk_constraints,
)
from robustbench_lite.attacks._topk_loop import parse_budget
from robustbench_lite.attacks.quadattack import QuadAttack
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.core.errors import (
    ModelSplitError,
    ParameterError,
    QPInfeasibleError,
    RobustbenchLiteError,
)
from robustbench_lite.core.threat import ThreatModel, ordered_topk_holds

pytestmark = pytest.mark.usefixtures("one_thread")


def _random_problem(seed: int, c: int, d: int, k: int, b: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(c, d, generator=gen), torch.randn(c, generator=gen)
    f0 = torch.randn(b, d, generator=gen)
    targets = torch.stack([torch.randperm(c, generator=gen)[:k] for _ in range(b)])
    return f0, weight, bias, targets


def _scipy_projection(a: np.ndarray, c: np.ndarray, f0: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    res = minimize(
        lambda v: float(((v - f0) ** 2).sum()),
        f0,
        jac=lambda v: 2 * (v - f0),
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda v: a @ v - c, "jac": lambda v: a}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert (a @ res.x - c >= -1e-7).all(), res.message  # scipy's point is feasible
    return res.x  # type: ignore[no-any-return]


@pytest.mark.parametrize(("c", "d", "k"), [(10, 64, 1), (10, 64, 5), (12, 20, 11), (40, 128, 20)])
def test_qp_matches_scipy_and_satisfies_every_constraint(c: int, d: int, k: int) -> None:
    f0, weight, bias, targets = _random_problem(c + k, c, d, k, b=6)
    margin = 0.3
    sol = project_topk(f0, weight, bias, targets, margin)
    a, cc = topk_constraints(weight, bias, targets, margin)
    assert a.shape == (6, c - 1, d)
    logits = sol.v @ weight.double().T + bias.double()
    picked = logits.gather(1, targets)
    others = logits.scatter(1, targets, float("-inf")).amax(dim=1)
    # every ordering pair and every non-target below t_K, with the margin
    assert (picked[:, :-1] - picked[:, 1:] >= margin - 1e-9).all()
    assert (picked[:, -1] - others >= margin - 1e-9).all()
    assert ordered_topk_holds(logits, targets).all()
    for i in range(len(f0)):
        ref = _scipy_projection(a[i].numpy(), cc[i].numpy(), f0[i].double().numpy())
        mine = float((sol.v[i] - f0[i].double()).norm())
        assert mine <= float(np.linalg.norm(ref - f0[i].double().numpy())) + 1e-7


def test_qp_leaves_feasible_points_alone_and_reports_zero_residual() -> None:
    f0, weight, bias, targets = _random_problem(1, 10, 32, 3, b=4)
    inside = project_topk(f0, weight, bias, targets, 0.5).v.float()
    again = project_topk(inside, weight, bias, targets, 0.1)
    assert torch.allclose(again.v, inside.double(), atol=1e-5)
    assert float(again.residual.max()) < 1e-9


def _duplicate_head(gap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A rank-deficient head: classes 0 and 1 share weights and differ by ``gap`` in bias."""
    weight = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    bias = torch.tensor([gap, 0.0, 0.0])
    return weight, bias


def test_infeasible_margin_is_detected_like_an_lp() -> None:
    from scipy.optimize import linprog

    weight, bias = _duplicate_head(0.1)
    targets = torch.tensor([[0, 1]])  # z0 - z1 = 0.1 always
    f0 = torch.zeros(1, 2)
    for margin, feasible in [(0.05, True), (0.2, False)]:
        a, c = topk_constraints(weight, bias, targets, margin)
        lp = linprog(np.zeros(2), A_ub=-a[0].numpy(), b_ub=-c[0].numpy(), bounds=[(None, None)] * 2)
        assert (lp.status == 0) == feasible
        sol = ProjectionQP(a, c).solve(f0)
        if feasible:
            check_feasible(sol, margin)
        else:
            with pytest.raises(QPInfeasibleError, match="margin=0.2"):
                check_feasible(sol, margin)


def _dup_head_model() -> rbl.Model:
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
        weight, bias = _duplicate_head(0.1)
        net[2].weight.copy_(weight)
        net[2].bias.copy_(bias)
    return rbl.Model(net=net, name="dup-head", input_shape=(2,), num_classes=3)


def test_attack_with_infeasible_margin_raises_before_optimising() -> None:
    model = _dup_head_model()
    x, y = torch.tensor([[0.2, 0.9]]), torch.tensor([2])
    targets = torch.tensor([[0, 1]])
    with pytest.raises(QPInfeasibleError, match="smaller margin"):
        rbl.create_attack("quadattack", margin=0.5, budget="1x5")(
            model, x, y, "none:top_k:2", target=targets
        )
    result = rbl.create_attack("quadattack", margin=0.05, budget="1x40", lr=0.05)(
        model, x, y, "none:top_k:2", target=targets
    )
    assert bool(result.success[0])


class _MLPHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


class _LinearHead(_MLPHead):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(16, 10)


class _Lying(_LinearHead):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.head(self.features(x))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("net", "message"),
    [
        (
            nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Softmax(dim=1)),
            "Softmax, not nn.Linear",
        ),
        (_MLPHead(), "Sequential, not nn.Linear"),
        (nn.Module(), "cannot find the linear head"),
        (_Lying(), "differs from the model's logits"),
    ],
)
def test_non_linear_heads_give_clear_errors(net: nn.Module, message: str, digits: tuple) -> None:
    model = rbl.Model(net=net, name="odd", input_shape=(1, 8, 8))
    with pytest.raises(ModelSplitError, match=message):
        split_model(model, check_inputs=digits[0][:4])
    if not isinstance(net, _Lying) and type(net) is not nn.Module:
        with pytest.raises(ModelSplitError):
            rbl.create_attack("quadattack", budget="1x2")(
                model, digits[0][:2], digits[1][:2], "none:top_k:2"
            )


def test_features_head_split_reproduces_logits(digits: tuple) -> None:
    model = rbl.Model(net=_LinearHead(), name="fh", input_shape=(1, 8, 8), mean=(0.3,), std=(0.2,))
    split = split_model(model, check_inputs=digits[0][:8])
    assert torch.allclose(
        split.logits(split.features(digits[0][:8])), model(digits[0][:8]), atol=1e-5
    )


def _correct(model: rbl.Model, digits: tuple, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digits
    keep = model.logits(x).argmax(dim=1) == y
    return x[keep][:n], y[keep][:n]


def test_quadattack_successes_hold_on_a_fresh_forward_pass(
    digits_cnn: rbl.Model, digits: tuple
) -> None:
    x, y = _correct(digits_cnn, digits, 24)
    result = rbl.create_attack("quadattack", budget="1x60", lr=0.03)(
        digits_cnn, x, y, "none:top_k:3", seed=1
    )
    assert result.success_rate >= 0.6
    assert result.target is not None and result.target.shape == (24, 3)
    assert not (result.target == y[:, None]).any()
    with torch.no_grad():
        fresh = digits_cnn.net(result.x_adv)
    assert torch.equal(ordered_topk_holds(fresh, result.target), result.success)
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
    assert result.metrics["qp_max_residual"] < 1e-6
    found = result.metrics["candidate_success_rate"]
    assert found >= result.success_rate - 1e-9


def test_k1_is_a_targeted_attack(digits_cnn: rbl.Model, digits: tuple) -> None:
    x, y = _correct(digits_cnn, digits, 12)
    attack = rbl.create_attack("quadattack", budget="1x30", lr=0.03)
    target = (y + 1 + torch.arange(len(y)) % 9) % 10
    targeted = attack(digits_cnn, x, y, "none:targeted", target=target, seed=3)
    top1 = attack(digits_cnn, x, y, "none:top_k:1", target=target[:, None], seed=3)
    assert torch.equal(targeted.x_adv, top1.x_adv)
    assert torch.equal(targeted.success, top1.success)
    assert targeted.success_rate >= 0.9
    with torch.no_grad():
        pred = digits_cnn.net(targeted.x_adv).argmax(dim=1)
    assert torch.equal(pred == targeted.target, targeted.success)


def test_hard_l2_budget_is_respected(digits_cnn: rbl.Model, digits: tuple) -> None:
    x, y = _correct(digits_cnn, digits, 12)
    small = rbl.create_attack("quadattack", budget="1x30", lr=0.03)(
        digits_cnn, x, y, "l2:0.3:top_k:2"
    )
    free = rbl.create_attack("quadattack", budget="1x30", lr=0.03)(digits_cnn, x, y, "none:top_k:2")
    assert ((small.x_adv - x).flatten(1).norm(dim=1) <= 0.3 + 1e-5).all()
    assert small.success_rate < free.success_rate


@pytest.mark.parametrize("bad", ["60", "0x10", "1x0", "ax3", "1x60x2", ""])
def test_bad_budgets_are_rejected(bad: str) -> None:
    with pytest.raises(ParameterError, match="budget: .*BxN"):
        parse_budget(bad)
    with pytest.raises(RobustbenchLiteError, match="write it as BxN"):
        rbl.create_attack("quadattack", budget=bad)
    assert parse_budget(" 9x30 ").search_steps == 9


def test_bad_margin_is_rejected() -> None:
    with pytest.raises(ParameterError, match="margin: 0.0 must be > 0"):
        QuadAttack(margin=0.0)
    with pytest.raises(RobustbenchLiteError, match="margin: -1.0 must be > 0"):
        rbl.create_attack("quadattack", margin=-1.0)


def test_threat_spec_for_top_k_parses() -> None:
    threat = ThreatModel.parse({"norm": "none", "goal": "top_k", "k": 5})
    assert threat.k == 5 and threat.spec() == "none:top_k:5"

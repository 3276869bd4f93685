"""Registry-generated contract tests: every attack, every (norm, goal) it supports.

Cases are generated from ``rbl.list_attacks()`` at collection time, so attacks added later are
covered without editing this file. Threats outside the four ``Lp`` norms (model inversion,
patches) are left out, and an attack that refuses the plain CNN or its inputs with
``UnsupportedLayerError`` or ``DataError`` (the spiking-network attacks, SDA's binary events) is
skipped; those carry tests of their own. Each case runs the attack with its
``quick_params`` on 16 test digits against ``zoo:digits-cnn`` and checks the base-class
contract on a fresh forward pass; it does not judge attack strength.
"""

from __future__ import annotations

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite import Goal, Norm
from robustbench_lite.core.registry import ATTACKS

N = 16
K = 3
EPS = {Norm.LINF: "0.1", Norm.L2: "1.0", Norm.L1: "4.0", Norm.L0: "6"}
CASE_TIMEOUT_S = 120  # per case; quick_params should keep each case to a few seconds


def _spec(norm: Norm, goal: Goal) -> str:
    spec = f"{norm.value}:{EPS[norm]}"
    if goal is Goal.TARGETED:
        return spec + ":targeted"
    if goal is Goal.TOP_K:
        return spec + f":top_k:{K}"
    return spec


def _cases() -> list[object]:
    cases = []
    for name in rbl.list_attacks():
        cls = ATTACKS.get(name)
        pairs = sorted((n.value, g.value) for n, g in cls.supports if n in EPS)
        for norm, goal in pairs:
            spec = _spec(Norm(norm), Goal(goal))
            cases.append(
                pytest.param(
                    name, spec, id=f"{name}-{spec}", marks=pytest.mark.timeout(CASE_TIMEOUT_S)
                )
            )
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return rbl.load_data("digits", split="test", n=N)


def test_cases_were_generated() -> None:
    names = {c.values[0] for c in CASES}  # type: ignore[attr-defined]
    assert {"pgd", "fgsm"} <= names


@pytest.mark.parametrize(("name", "spec"), CASES)
def test_attack_contract(
    name: str, spec: str, digits_cnn: rbl.Model, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    x_before = x.clone()
    threat = rbl.ThreatModel.parse(spec)
    attack = rbl.create_attack(name, **dict(ATTACKS.get(name).quick_params))
    try:
        result = attack(digits_cnn, x, y, threat, seed=0)
    except (rbl.UnsupportedLayerError, rbl.DataError) as exc:
        assert name not in {"pgd", "fgsm", "apgd", "square", "fmn"}, exc
        pytest.skip(f"{name} needs another model family or input domain: {exc}")

    assert torch.equal(x, x_before), "the attack modified its input tensor"
    x_adv = result.x_adv
    assert isinstance(x_adv, torch.Tensor) and x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert result.success.shape == (N,) and result.success.dtype == torch.bool
    lo, hi = digits_cnn.bounds
    assert float(x_adv.min()) >= lo and float(x_adv.max()) <= hi
    inside = threat.contains(x, x_adv, digits_cnn.bounds)
    assert bool(inside.all()), (
        f"max distance {float(threat.distance(x, x_adv).max())} > eps {threat.eps}"
    )

    with torch.no_grad():
        fresh_adv = digits_cnn.net(x_adv)
        fresh_clean = digits_cnn.net(x)
    expected = inside & threat.is_success(fresh_adv, y, result.target)
    assert torch.equal(result.success, expected)
    assert torch.equal(result.clean_correct, fresh_clean.argmax(1) == y)
    assert 0.0 <= result.robust_accuracy <= result.clean_accuracy <= 1.0
    assert result.elapsed_s >= 0.0

    if threat.goal is Goal.UNTARGETED:
        return
    assert result.target is not None
    targets = result.target.reshape(N, -1)
    assert targets.shape[1] == (K if threat.goal is Goal.TOP_K else 1)
    assert not bool((targets == y[:, None]).any()), "a target equals the true label"
    assert all(len(set(row.tolist())) == targets.shape[1] for row in targets)

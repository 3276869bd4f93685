"""The Attack base class never trusts an attack: it projects, re-checks and validates inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import robustbench_lite as rbl
from robustbench_lite import Goal, Norm
from robustbench_lite.core.attack import AttackResult
from robustbench_lite.report.values import result_values

ALL = frozenset((n, g) for n in (Norm.LINF, Norm.L2) for g in Goal)


@dataclass(frozen=True)
class Shove(rbl.Attack):
    """Returns ``x + offset`` regardless of the threat (a cheating attack)."""

    supports = ALL
    offset: float = 10.0

    def run(self, model: Any, x: Any, y: Any, threat: Any, *, target: Any, generator: Any) -> Any:
        return x + self.offset


@dataclass(frozen=True)
class Diverge(rbl.Attack):
    supports = ALL

    def run(self, model: Any, x: Any, y: Any, threat: Any, *, target: Any, generator: Any) -> Any:
        out = x.clone()
        out[::2] = float("nan")
        return rbl.AttackOutput(out, queries=7, metrics={"note": "diverged", "score": 0.5})


class Threshold(nn.Module):
    """Class 1 iff the mean pixel exceeds 0.5 (so moving every pixel up flips class 0 inputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).mean(1) - 0.5
        return torch.stack([-s, s], 1)


@pytest.fixture()
def threshold() -> rbl.Model:
    return rbl.Model(net=Threshold(), input_shape=(4,), num_classes=2, name="threshold")


def test_cheating_output_is_projected_and_rechecked(threshold: rbl.Model) -> None:
    x = torch.tensor([[0.40] * 4, [0.45] * 4, [0.20] * 4])
    y = torch.zeros(3, dtype=torch.long)
    result = Shove()(threshold, x, y, "linf:0.08")
    assert isinstance(result.x_adv, torch.Tensor)
    assert torch.allclose(result.x_adv, x + 0.08)  # projected onto the linf ball
    assert result.success.tolist() == [False, True, False]  # judged on the projected point
    assert result.adv_pred is not None and result.adv_pred.tolist() == [0, 1, 0]
    clipped = Shove()(
        threshold, torch.full((1, 4), 0.95), torch.ones(1, dtype=torch.long), "linf:0.5"
    )
    assert float(clipped.x_adv.max()) == 1.0  # type: ignore[union-attr]  # and into the bounds


def test_nan_candidates_fall_back_to_the_clean_input(threshold: rbl.Model) -> None:
    x = torch.tensor([[0.49] * 4, [0.49] * 4])
    y = torch.zeros(2, dtype=torch.long)
    result = Diverge()(threshold, x, y, "l2:1")
    assert isinstance(result.x_adv, torch.Tensor) and torch.isfinite(result.x_adv).all()
    assert torch.equal(result.x_adv[0], x[0]) and not result.success[0]
    assert result.queries == 7 and result.metrics["note"] == "diverged"
    values = result_values(result)
    assert values["score"] == 0.5 and "note" not in values


def test_unsupported_threats_and_bad_labels_are_refused(threshold: rbl.Model) -> None:
    x = torch.full((2, 4), 0.3)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(
        rbl.UnsupportedThreatError, match="does not support l1/untargeted.*linf/untargeted"
    ):
        Shove()(threshold, x, y, "l1:1")
    with pytest.raises(rbl.DataError, match=r"labels have shape \(3,\)"):
        Shove()(threshold, x, torch.zeros(3, dtype=torch.long), "linf:0.1")
    with pytest.raises(rbl.DataError, match="labels span 0..5 but threshold has 2 classes"):
        Shove()(threshold, x, torch.tensor([0, 5]), "linf:0.1")
    with pytest.raises(rbl.DataError, match="integer class ids"):
        Shove()(threshold, x, torch.zeros(2), "linf:0.1")
    with pytest.raises(rbl.ThreatSpecError):
        Shove()(threshold, x, y, "linf:-1")


def test_targets_given_or_drawn(
    digits_cnn: rbl.Model, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits[0][:20], digits[1][:20]
    given = (y + 1) % 10
    r = Shove(offset=0.0)(digits_cnn, x, y, "linf:0.1:targeted", target=given)
    assert r.target is given and not r.success.any()  # no perturbation: the target is not reached
    drawn = Shove(offset=0.0)(digits_cnn, x, y, "linf:0.1:top_k:3", seed=5)
    assert drawn.target is not None and drawn.target.shape == (20, 3)
    assert not bool((drawn.target == y[:, None]).any())


def test_result_rates() -> None:
    r = AttackResult(
        attack="a",
        threat="linf:0.1",
        x_adv=torch.zeros(4, 1),
        elapsed_s=0.0,
        success=torch.tensor([True, False, True, False]),
        clean_correct=torch.tensor([True, True, False, False]),
    )
    assert r.clean_accuracy == 0.5
    assert r.robust_accuracy == 0.25  # only sample 1 is clean-correct and unbroken
    assert r.success_rate == 0.5  # of the two clean-correct samples, one was broken
    assert result_values(r) == {"clean_accuracy": 0.5, "robust_accuracy": 0.25, "success_rate": 0.5}

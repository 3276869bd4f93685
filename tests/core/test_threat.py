"""ThreatModel: parsing, canonical specs, projection/containment per norm, goals and targets."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import robustbench_lite as rbl
from robustbench_lite import Goal, Norm, ThreatModel, ThreatSpecError, UnsupportedThreatError
from robustbench_lite.core.threat import ordered_topk_holds

# ---------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("spec", "norm", "eps", "goal", "k", "modality"),
    [
        ("linf:8/255", Norm.LINF, 8 / 255, Goal.UNTARGETED, 1, None),
        ("l2:0.5", Norm.L2, 0.5, Goal.UNTARGETED, 1, None),
        ("L1:12", Norm.L1, 12.0, Goal.UNTARGETED, 1, None),
        ("l0:6", Norm.L0, 6.0, Goal.UNTARGETED, 1, None),
        ("linf:0.1:targeted", Norm.LINF, 0.1, Goal.TARGETED, 1, None),
        ("l2:1.0:top_k:5", Norm.L2, 1.0, Goal.TOP_K, 5, None),
        ("linf:4/255:top_k:3@rgb", Norm.LINF, 4 / 255, Goal.TOP_K, 3, "rgb"),
        (" linf : 1e-2 ", Norm.LINF, 0.01, Goal.UNTARGETED, 1, None),
        ("none:targeted", Norm.NONE, 0.0, Goal.TARGETED, 1, None),
        (
            {"norm": "l2", "eps": "8/255", "goal": "top_k", "k": 5},
            Norm.L2,
            8 / 255,
            Goal.TOP_K,
            5,
            None,
        ),
        ({"norm": "none", "goal": "targeted"}, Norm.NONE, 0.0, Goal.TARGETED, 1, None),
    ],
)
def test_parse(
    spec: object, norm: Norm, eps: float, goal: Goal, k: int, modality: str | None
) -> None:
    t = ThreatModel.parse(spec)  # type: ignore[arg-type]
    assert (t.norm, t.goal, t.k, t.modality) == (norm, goal, k, modality)
    assert t.eps == pytest.approx(eps, rel=1e-15, abs=0)
    assert ThreatModel.parse(t.spec()) == t
    assert t.name == t.spec()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "unknown norm"),
        ("linf", "no epsilon"),
        ("linf:", "no epsilon"),
        ("linf:abc", "'abc'"),
        ("linf:-0.1", ">= 0"),
        ("linf:nan", "not a number"),
        ("linf:inf", "not a number"),
        ("linf:1/0", "divides by zero"),
        ("lnf:0.1", "did you mean linf"),
        ("linf:0.1:sideways", "unknown goal"),
        ("l2:1:top_k", "needs K"),
        ("l2:1:top_k:0", "positive integer"),
        ("l2:1:top_k:2.5", "positive integer"),
        ("linf:0.1:targeted:3", "trailing"),
        ({"norm": "linf"}, "needs 'eps'"),
        ({"eps": 0.1}, "missing key 'norm'"),
        ({"norm": "linf", "epz": 0.1}, "did you mean eps"),
        ({"norm": "linf", "eps": -1}, ">= 0"),
        ({"norm": "linf", "eps": True}, "not a number"),
        ({"norm": "linf", "eps": 0.1, "k": 2}, "only meaningful with goal top_k"),
        (3.5, "must be a string"),
    ],
)
def test_malformed_specs_name_the_problem(spec: object, needle: str) -> None:
    with pytest.raises(ThreatSpecError) as info:
        ThreatModel.parse(spec)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_constructor_validates_and_coerces() -> None:
    assert ThreatModel("l2", 1, "targeted") == ThreatModel(Norm.L2, 1.0, Goal.TARGETED)  # type: ignore[arg-type]
    for bad in ({"eps": -0.1}, {"eps": math.inf}, {"eps": "8/255"}, {"k": 0}, {"k": 3}):
        with pytest.raises(ThreatSpecError):
            ThreatModel(Norm.LINF, **{"eps": 0.1, **bad})  # type: ignore[arg-type]
    assert ThreatModel.parse("linf:0.1").with_eps(0.2).name == "linf:0.2"


@settings(max_examples=200, deadline=None)
@given(
    eps=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    norm=st.sampled_from([Norm.LINF, Norm.L2, Norm.L1, Norm.L0]),
    goal=st.sampled_from(list(Goal)),
    k=st.integers(1, 9),
)
def test_spec_round_trip_is_exact(eps: float, norm: Norm, goal: Goal, k: int) -> None:
    t = ThreatModel(norm, eps, goal, k if goal is Goal.TOP_K else 1)
    back = ThreatModel.parse(t.spec())
    assert back == t and back.eps == eps


# ------------------------------------------------------------------------------- geometry
BOUNDS = (0.0, 1.0)


def _points(
    seed: int, n: int = 64, shape: tuple[int, ...] = (1, 8, 8)
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.rand((n, *shape), generator=gen)
    x = x0 + 3 * torch.randn((n, *shape), generator=gen)
    return x0, x


@pytest.mark.parametrize("spec", ["linf:0.1", "l2:1.0", "l1:4", "l0:6", "linf:0", "l2:0"])
def test_projection_lands_in_the_set_and_in_bounds(spec: str) -> None:
    t = ThreatModel.parse(spec)
    x0, x = _points(1)
    p = t.project(x0, x, BOUNDS)
    assert isinstance(p, torch.Tensor)
    assert p.shape == x0.shape and p.dtype == x0.dtype
    assert bool(t.contains(x0, p, BOUNDS).all())
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    assert bool((t.distance(x0, p) <= t.eps + 1e-5 * max(1.0, t.eps)).all())
    # projecting twice changes nothing (idempotent), and the clean point is inside
    p2 = t.project(x0, p, BOUNDS)
    assert torch.allclose(p, p2, atol=1e-6)
    assert bool(t.contains(x0, x0, BOUNDS).all())


@pytest.mark.parametrize(
    ("spec", "outside"),
    [("linf:0.1", 0.1 + 1e-3), ("l2:1.0", 1.0 + 1e-3), ("l1:4", 4.0 + 1e-3)],
)
def test_contains_rejects_points_just_outside(spec: str, outside: float) -> None:
    t = ThreatModel.parse(spec)
    x0 = torch.full((3, 16), 0.5)
    delta = torch.zeros(3, 16)
    delta[:, 0] = outside  # one coordinate: its linf, l2 and l1 norms all equal `outside`
    assert not bool(t.contains(x0, x0 + delta).any())
    delta[:, 0] = outside - 2e-3
    assert bool(t.contains(x0, x0 + delta).all())


def test_contains_l0_counts_changed_entries() -> None:
    t = ThreatModel.parse("l0:3")
    x0 = torch.zeros(2, 10)
    x = x0.clone()
    x[0, :3] = 1.0
    x[1, :4] = 0.01
    assert t.contains(x0, x).tolist() == [True, False]


def test_contains_checks_bounds_when_given() -> None:
    t = ThreatModel.parse("linf:0.5")
    x0 = torch.full((1, 4), 0.9)
    x = x0 + 0.2
    assert bool(t.contains(x0, x))
    assert not bool(t.contains(x0, x, BOUNDS))


def test_l2_projection_scales_along_the_perturbation() -> None:
    t = ThreatModel.parse("l2:0.5")
    x0, x = _points(2, shape=(16,))
    p = t.project(x0, x, (-100.0, 100.0))
    assert isinstance(p, torch.Tensor)
    d, q = x - x0, p - x0
    expected = d * (0.5 / d.norm(dim=1, keepdim=True))
    assert torch.allclose(q, expected, atol=1e-5)


def test_l1_projection_is_the_euclidean_projection() -> None:
    """KKT conditions of argmin ||q - d||_2 s.t. ||q||_1 <= eps: a soft threshold at theta."""
    eps = 2.0
    t = ThreatModel.parse(f"l1:{eps}")
    x0, x = _points(3, shape=(32,))
    p = t.project(x0, x, (-100.0, 100.0))
    assert isinstance(p, torch.Tensor)
    d, q = (x - x0).double(), (p - x0).double()
    assert torch.allclose(q.abs().sum(dim=1), torch.full((64,), eps, dtype=torch.double), atol=1e-4)
    assert bool((torch.sign(q) * torch.sign(d) >= 0).all())
    for di, qi in zip(d, q):
        kept = qi != 0
        theta = (di[kept].abs() - qi[kept].abs()).mean()
        assert torch.allclose(
            di[kept].abs() - qi[kept].abs(), theta.expand(int(kept.sum())), atol=1e-4
        )
        assert bool((di[~kept].abs() <= theta + 1e-4).all())
    inside = torch.full((1, 32), 0.01, dtype=torch.float64)
    assert torch.equal(t.project(torch.zeros(1, 32, dtype=torch.float64), inside, (-1, 1)), inside)


def test_l0_projection_keeps_the_largest_changes() -> None:
    t = ThreatModel.parse("l0:2")
    x0 = torch.zeros(1, 5)
    x = torch.tensor([[0.1, -0.9, 0.3, 0.5, -0.2]])
    p = t.project(x0, x, (-1.0, 1.0))
    assert torch.equal(p, torch.tensor([[0.0, -0.9, 0.0, 0.5, 0.0]]))


def test_mapping_inputs_only_change_the_modality() -> None:
    t = ThreatModel.parse("linf:0.1@rgb")
    x0 = {"rgb": torch.zeros(2, 3), "lidar": torch.zeros(2, 4)}
    x = {"rgb": torch.ones(2, 3), "lidar": torch.ones(2, 4)}
    p = t.project(x0, x, BOUNDS)
    assert isinstance(p, dict)
    assert torch.allclose(p["rgb"], torch.full((2, 3), 0.1)) and torch.equal(
        p["lidar"], x0["lidar"]
    )
    assert bool(t.contains(x0, p).all())
    assert not bool(t.contains(x0, {"rgb": p["rgb"], "lidar": x["lidar"]}).any())
    with pytest.raises(UnsupportedThreatError, match="modality"):
        ThreatModel.parse("linf:0.1").project(x0, x, BOUNDS)


# ---------------------------------------------------------------------------------- goals
def test_is_success_untargeted_and_targeted() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 3.0, 0.0], [0.0, 1.0, 5.0]])
    y = torch.tensor([1, 0, 1])
    assert rbl.ThreatModel.parse("linf:0.1").is_success(logits, y).tolist() == [False, False, True]
    targeted = ThreatModel.parse("linf:0.1:targeted")
    # a tie with the target is not a success
    assert targeted.is_success(logits, y, torch.tensor([1, 1, 2])).tolist() == [True, False, True]
    with pytest.raises(UnsupportedThreatError, match="needs targets"):
        targeted.is_success(logits, y)


@pytest.mark.parametrize(
    ("row", "targets", "ok"),
    [
        ([3.0, 2.0, 1.0, 0.0], [0, 1], True),
        ([3.0, 2.0, 1.0, 0.0], [1, 0], False),  # right set, wrong order
        ([3.0, 2.0, 1.0, 0.0], [0, 2], False),  # class 1 sits between the targets
        ([3.0, 3.0, 1.0, 0.0], [0, 1], False),  # tie inside the targets
        ([3.0, 2.0, 2.0, 0.0], [0, 1], False),  # last target tied with a non-target
        ([0.0, 1.0, 2.0, 3.0], [3, 2, 1], True),
    ],
)
def test_ordered_top_k(row: list[float], targets: list[int], ok: bool) -> None:
    logits, t = torch.tensor([row]), torch.tensor([targets])
    assert ordered_topk_holds(logits, t).tolist() == [ok]
    threat = ThreatModel.parse(f"l2:1:top_k:{len(targets)}")
    assert threat.is_success(logits, torch.tensor([9]), t).tolist() == [ok]


@pytest.mark.parametrize("spec", ["linf:0.1:targeted", "linf:0.1:top_k:3", "l2:1:top_k:9"])
def test_sample_targets_never_hit_the_label(spec: str) -> None:
    t = ThreatModel.parse(spec)
    y = torch.arange(500) % 10
    targets = t.sample_targets(y, 10, torch.Generator().manual_seed(0))
    assert targets is not None
    tk = targets.reshape(500, -1)
    assert tk.shape[1] == (1 if t.goal is Goal.TARGETED else t.k)
    assert not bool((tk == y[:, None]).any())
    assert all(len(set(r.tolist())) == tk.shape[1] for r in tk)
    assert bool(((tk >= 0) & (tk < 10)).all())
    again = t.sample_targets(y, 10, torch.Generator().manual_seed(0))
    assert torch.equal(targets, again)  # seeded
    if t.goal is Goal.TARGETED:  # every wrong class is drawn
        assert set(tk[y == 0, 0].tolist()) == set(range(1, 10))


def test_sample_targets_needs_enough_classes() -> None:
    assert (
        ThreatModel.parse("linf:0.1").sample_targets(
            torch.zeros(3, dtype=torch.long), 10, torch.Generator()
        )
        is None
    )
    with pytest.raises(UnsupportedThreatError, match="at least 11 classes"):
        ThreatModel.parse("linf:0.1:top_k:10").sample_targets(
            torch.zeros(3, dtype=torch.long), 10, torch.Generator()
        )

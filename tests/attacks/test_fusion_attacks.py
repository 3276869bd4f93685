"""Camera-only patch attacks on the toy fusion detectors (zoo:fusion-bev, zoo:fusion-query)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from robustbench_lite.attacks.fusion_patch import FusionPatch

import robustbench_lite as rbl
from robustbench_lite.core.errors import (
    DataError,
    ParameterError,
    ThreatSpecError,
    UnsupportedThreatError,
)
from robustbench_lite.worlds.fusion_world import make_scenes, object_pixels, target_score

THREAT = "patch:0.04@camera"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scenes() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """4 held-out scenes (seed 3; training used 1000, evaluation 2000) and labels 1 = detected."""
    x, _ = make_scenes(4, seed=3)
    return x, torch.ones(4, dtype=torch.long)


@pytest.fixture(scope="module")
def query() -> rbl.Model:
    return rbl.load_model("zoo:fusion-query")


@pytest.fixture(scope="module")
def bev() -> rbl.Model:
    return rbl.load_model("zoo:fusion-bev")


def changed_mask(adv: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, H, W) bool: camera pixel locations the attack changed."""
    return (adv["camera"] != x["camera"]).any(dim=1)


def _target(model: rbl.Model, x: object) -> torch.Tensor:
    with torch.no_grad():
        return target_score(model.net.score_map(x), x["target_xy"])  # type: ignore[index]


def test_object_patch_beats_random_patch_on_the_query_model(
    query: rbl.Model, scenes: tuple
) -> None:
    x, y = scenes
    attack = rbl.create_attack("fusion_patch", strategy="object", steps=25, eot_samples=2, lr=0.05)
    adv = attack(query, x, y, THREAT, seed=0)
    control = rbl.create_attack("fusion_patch", strategy="object", steps=0)(
        query, x, y, THREAT, seed=0
    )
    clean_s, adv_s, ctl_s = (
        _target(query, x),
        _target(query, adv.x_adv),
        _target(query, control.x_adv),
    )
    assert float(adv_s.mean()) < float(ctl_s.mean()) - 0.2, (clean_s, adv_s, ctl_s)
    assert float(adv_s.mean()) < 0.5 * float(clean_s.mean())
    # the base class re-checked success on the real model: suppressed below 0.3 and in the threat set
    assert adv.success.tolist() == (adv_s < 0.3).tolist()
    assert adv.success_rate > control.success_rate


def test_lidar_is_bit_identical_and_area_within_eps(query: rbl.Model, scenes: tuple) -> None:
    x, y = scenes
    for strategy, universal in (("object", False), ("scene", False), ("scene", True)):
        attack = rbl.create_attack(
            "fusion_patch", strategy=strategy, steps=2, eot_samples=1, universal=universal
        )
        r = attack(query, x, y, THREAT)
        adv = r.x_adv
        assert isinstance(adv, dict)
        assert torch.equal(adv["lidar"], x["lidar"]) and torch.equal(
            adv["target_xy"], x["target_xy"]
        )
        changed = (adv["camera"] != x["camera"]).any(dim=1).flatten(1).double().mean(dim=1)
        assert bool((changed > 0).all()) and bool((changed <= 0.04).all())
        assert float(adv["camera"].min()) >= 0.0 and float(adv["camera"].max()) <= 1.0
        if universal:  # one texture on the same ground rectangle: identical patch pixels
            assert torch.equal(
                adv["camera"][0][:, changed_mask(adv, x)[0]],
                adv["camera"][1][:, changed_mask(adv, x)[0]],
            )


@dataclass(frozen=True)
class _LidarCheat(FusionPatch):
    """A patch attack that also (illegally) wipes the LiDAR map."""

    def run(self, model, x, y, threat, *, target, generator):  # type: ignore[no-untyped-def]
        out = super().run(model, x, y, threat, target=target, generator=generator)
        return {**out.x_adv, "lidar": torch.zeros_like(x["lidar"])}


def test_base_class_rejects_a_lidar_change_even_if_it_suppresses(
    query: rbl.Model, scenes: tuple
) -> None:
    x, y = scenes
    cheat = _LidarCheat(steps=0)
    r = cheat(query, x, y, THREAT)
    with torch.no_grad():
        fooled = query(r.x_adv).argmax(dim=1) != y
    assert bool(fooled.any())  # no LiDAR: the real model misses targets...
    assert not bool(r.success.any())  # ...but none of it counts: LiDAR is outside the threat


def test_bad_inputs_give_clear_errors(query: rbl.Model, scenes: tuple) -> None:
    x, y = scenes
    attack = rbl.create_attack("fusion_patch", steps=1)
    with pytest.raises(DataError, match="takes a mapping.*not a tensor of shape"):
        attack(query, x["camera"], y, THREAT)
    with pytest.raises(DataError, match=r"lack \['camera'\]"):
        attack(query, {k: v for k, v in x.items() if k != "camera"}, y, THREAT)
    with pytest.raises(DataError, match="no 'rgb' entry"):
        attack(query, x, y, "patch:0.04@rgb")
    with pytest.raises(UnsupportedThreatError, match="names no modality.*@camera"):
        attack(query, x, y, "patch:0.04")
    with pytest.raises(ThreatSpecError, match="must be <= 1"):
        attack(query, x, y, "patch:1.5@camera")
    with pytest.raises(
        UnsupportedThreatError, match=r"above the threat's eps 0.001.*patch:0.01@camera"
    ):
        attack(query, x, y, "patch:0.001@camera")
    with pytest.raises(ParameterError, match="strategy: 'bogus': choose one of"):
        rbl.create_attack("fusion_patch", strategy="bogus")(query, x, y, THREAT)
    with pytest.raises(UnsupportedThreatError, match="does not support linf"):
        attack(query, x, y, "linf:0.1@camera")


def test_heatmap_is_object_local_for_query_and_spread_for_bev(
    query: rbl.Model, bev: rbl.Model, scenes: tuple
) -> None:
    """Stage 1 on 2 scenes: the query model's mask mass sits on the boxes (pixels whose ray hits
    a box, dilated by 1 px), the BEV model's is spread over the road (measured: object mass share
    0.49 / 0.22 vs 0.17 / 0.05 on 7 % / 2 % of the image; top-10 % mass 0.68 vs 0.42)."""
    x, y = scenes
    x2 = {k: v[:2] for k, v in x.items()}
    _, gt = make_scenes(4, seed=3)
    objects = torch.stack([object_pixels(s) for s in gt[:2]]).float()
    objects = torch.nn.functional.max_pool2d(objects[:, None], 3, stride=1, padding=1)[:, 0] > 0
    attack = rbl.create_attack("fusion_heatmap", steps=60)
    rq = attack(query, x2, y[:2], "patch:1@camera")
    rb = attack(bev, x2, y[:2], "patch:1@camera")
    assert rq.metrics["heatmap"].shape == (2, 48, 96)
    assert torch.equal(rq.x_adv["lidar"], x2["lidar"])  # type: ignore[index]

    def object_share(heat: torch.Tensor) -> torch.Tensor:
        return (heat * objects).flatten(1).sum(1) / heat.flatten(1).sum(1)

    share_q, share_b = object_share(rq.metrics["heatmap"]), object_share(rb.metrics["heatmap"])
    area = objects.double().flatten(1).mean(1)
    assert bool((share_q > 2 * share_b).all()) and bool((share_q > 4 * area).all()), (
        share_q,
        share_b,
        area,
    )
    top_q, top_b = rq.metrics["heatmap_top10_mass"], rb.metrics["heatmap_top10_mass"]
    assert top_q > top_b + 0.15, (top_q, top_b)


def test_per_scene_projection_from_the_data_places_the_same_patch(
    query: rbl.Model, scenes: tuple
) -> None:
    """``inputs["projection"]`` (kitti's calibrations) replaces the detector's camera; the toy
    camera's own matrix given that way gives the bit-identical patch and control."""
    x, y = scenes
    attack = rbl.create_attack("fusion_patch", strategy="object", steps=1, eot_samples=1)
    plain = attack(query, x, y, THREAT, seed=4)
    proj = query.net.camera.projection().expand(4, 3, 4).clone()
    given = attack(query, {**x, "projection": proj}, y, THREAT, seed=4)
    assert torch.equal(given.x_adv["camera"], plain.x_adv["camera"])
    assert torch.equal(given.metrics["random_patch_camera"], plain.metrics["random_patch_camera"])
    # the control is the steps=0 run: same texture draw, same place
    control = rbl.create_attack("fusion_patch", strategy="object", steps=0)(
        query, x, y, THREAT, seed=4
    )
    assert torch.equal(control.x_adv["camera"], plain.metrics["random_patch_camera"])
    with pytest.raises(DataError, match="projection"):
        attack(query, {**x, "projection": proj[:, :2]}, y, THREAT)

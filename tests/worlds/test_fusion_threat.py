"""The patch threat on mapping inputs: parsing, area budget, untouched modalities."""

from __future__ import annotations

import pytest
import torch

from robustbench_lite.core.errors import DataError, ThreatSpecError, UnsupportedThreatError
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Norm


def _inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "camera": torch.rand(2, 3, 10, 10, generator=gen),
        "lidar": torch.rand(2, 2, 4, 4, generator=gen),
    }


def test_parse_patch_spec_round_trips() -> None:
    t = ThreatModel.parse("patch:0.04@camera")
    assert (t.norm, t.eps, t.modality) == (Norm.PATCH, 0.04, "camera")
    assert ThreatModel.parse(t.spec()) == t
    assert (
        ThreatModel.parse({"norm": "patch", "eps": 0.04, "modality": "camera"}).spec()
        == "patch:0.04@camera"
    )


@pytest.mark.parametrize(
    "spec", ["patch:1.5@camera", {"norm": "patch", "eps": 4, "modality": "camera"}]
)
def test_patch_eps_above_one_is_rejected(spec: object) -> None:
    with pytest.raises(ThreatSpecError, match="area fraction.*patch:0.04@camera"):
        ThreatModel.parse(spec)  # type: ignore[arg-type]


def test_contains_counts_changed_pixel_locations() -> None:
    x0 = _inputs()
    t = ThreatModel.parse("patch:0.04@camera")
    x = {**x0, "camera": x0["camera"].clone()}
    x["camera"][0, :, 0, :4] = 0.0  # 4 of 100 locations, all channels
    x["camera"][1, 1, 5, 5] = 1.0  # 1 location, one channel
    assert t.distance(x0, x).tolist() == pytest.approx([0.04, 0.01])
    assert t.contains(x0, x, (0.0, 1.0)).tolist() == [True, True]
    x["camera"][0, 0, 9, 9] = 0.5  # a fifth location: 5 % > 4 %
    assert t.contains(x0, x, (0.0, 1.0)).tolist() == [False, True]


def test_contains_rejects_any_lidar_change_and_out_of_bounds_values() -> None:
    x0 = _inputs()
    t = ThreatModel.parse("patch:0.5@camera")
    lidar = x0["lidar"].clone()
    lidar[1, 0, 0, 0] = torch.nextafter(lidar[1, 0, 0, 0], torch.tensor(2.0))  # one ulp
    assert t.contains(x0, {**x0, "lidar": lidar}, (0.0, 1.0)).tolist() == [True, False]
    cam = x0["camera"].clone()
    cam[0, 0, 0, 0] = 1.5
    assert t.contains(x0, {**x0, "camera": cam}, (0.0, 1.0)).tolist() == [False, True]


def test_project_refuses_patch_threats_with_a_clear_message() -> None:
    x0 = _inputs()
    with pytest.raises(UnsupportedThreatError, match="patch attack"):
        ThreatModel.parse("patch:0.04@camera").project(x0, x0, (0.0, 1.0))


def test_contains_refuses_a_candidate_with_other_modalities() -> None:
    x0 = _inputs()
    t = ThreatModel.parse("patch:0.04@camera")
    with pytest.raises(
        DataError, match=r"modalities \['camera', 'lidar'\] but the candidate has one tensor"
    ):
        t.contains(x0, x0["camera"], (0.0, 1.0))
    with pytest.raises(DataError, match=r"candidate has modalities \['camera'\]"):
        t.contains(x0, {"camera": x0["camera"]}, (0.0, 1.0))

"""Multimodal data sources: fusion-world scenes, the KITTI frames and npz archives of named arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import data_dir_or_skip

import robustbench_lite as rbl
from robustbench_lite.datasets import load_inputs
from robustbench_lite.datasets.fusion_world import scenes_of
from robustbench_lite.worlds.fusion_geometry import project_points
from robustbench_lite.worlds.fusion_world import (
    average_precision,
    detection_records,
    heatmap_targets,
    make_scenes,
    toy_ap,
)


def test_fusion_world_is_make_scenes_with_boxes_and_labels() -> None:
    x, y = load_inputs("fusion-world", n=3, seed=7)
    ref, scenes = make_scenes(3, seed=7)
    assert isinstance(x, dict) and y.tolist() == [1, 1, 1]
    for key in ("camera", "lidar", "target_xy", "target_lwh"):
        assert torch.equal(x[key], ref[key]), key
    back = scenes_of(x["boxes"])
    assert [len(s.boxes) for s in back] == [len(s.boxes) for s in scenes]
    for a, b in zip(back, scenes):
        torch.testing.assert_close(a.cars, b.cars, atol=1e-6, rtol=0)
    # n is part of the generation (LiDAR noise is drawn after all scenes), never a prefix
    x4, _ = load_inputs("fusion-world", n=4, seed=7)
    assert torch.equal(x4["camera"][:3], x["camera"]) and not torch.equal(
        x4["lidar"][:3], x["lidar"]
    )
    # default seed by split: the zoo's test scenes are seed 2000
    xt, _ = load_inputs("fusion-world", n=1)
    assert torch.equal(xt["camera"], make_scenes(1, seed=2000)[0]["camera"])


def test_mapping_sources_refuse_tensor_loading_and_bad_options() -> None:
    with pytest.raises(rbl.DataError, match="load_inputs"):
        rbl.load_data("fusion-world", n=1)
    with pytest.raises(rbl.DataError, match="seed"):
        load_inputs("fusion-world", n=1, seed="seven")
    with pytest.raises(rbl.DataError, match="unknown option 'sed'"):
        load_inputs("fusion-world", n=1, sed=7)
    with pytest.raises(rbl.DataError, match="positive"):
        load_inputs("fusion-world", n=0)


def test_toy_ap_pools_per_scene_records() -> None:
    """AP over pooled per-scene records equals toy_ap: cells scored apart merge exactly."""
    _, scenes = make_scenes(6, seed=5)
    maps = (heatmap_targets(scenes, cars_only=False) * 0.9 + 0.05).clamp(0, 1)
    first = detection_records(maps[:4], scenes[:4])
    second = detection_records(maps[4:], scenes[4:])
    pooled = [r for part in (first, second) for recs in part for r in recs]
    n_gt = sum(len(s.cars) for s in scenes)
    assert average_precision(pooled, n_gt) == toy_ap(maps, scenes)
    assert 0.0 < toy_ap(maps, scenes) < 1.0  # decoys score too: some false positives


def test_npz_of_named_arrays_loads_as_a_mapping(tmp_path: Path) -> None:
    x, _ = make_scenes(3, seed=1)
    path = tmp_path / "scenes.npz"
    np.savez(path, y=np.ones(3, dtype=np.int64), **{k: v.numpy() for k, v in x.items()})
    got, y = load_inputs(f"npz:{path}", n=2)
    assert isinstance(got, dict) and sorted(got) == sorted(x) and y.tolist() == [1, 1]
    for k in x:
        assert torch.equal(got[k], x[k][:2]), k
    bad = tmp_path / "bad.npz"
    np.savez(bad, y=np.ones(3, dtype=np.int64), camera=np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(rbl.DataError, match="matching camera"):
        load_inputs(f"npz:{bad}")


def test_kitti_frames_as_mapping_inputs() -> None:
    data_dir_or_skip("kitti_object_3frames")
    x, y = load_inputs("kitti", size=(96, 320))
    assert isinstance(x, dict) and y.tolist() == [1, 1, 1]
    assert x["camera"].shape == (3, 3, 96, 320) and x["lidar"].shape == (3, 2, 32, 32)
    assert x["projection"].shape == (3, 3, 4)
    # frame 000001's target is its nearest car, 58.5 m ahead in the camera frame
    assert abs(float(x["target_xy"][1, 0]) - 58.8) < 0.5
    for i in range(3):  # every target's road-level centre projects into its own image
        cx, cy = (float(v) for v in x["target_xy"][i])
        uv, depth = project_points(
            x["projection"][i].double(), torch.tensor([[cx, cy, 0.0]], dtype=torch.float64)
        )
        assert float(depth[0]) > 0
        assert 0 <= float(uv[0, 0]) < 320 and 0 <= float(uv[0, 1]) < 96, (i, uv)

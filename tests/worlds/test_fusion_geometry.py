"""Patch geometry: exact homographies on the toy camera and on real KITTI calibration."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import data_dir_or_skip

from robustbench_lite.core.errors import DataError
from robustbench_lite.worlds.fusion_geometry import (
    ground_homography,
    ground_patch,
    patch_coordinates,
    project_points,
    rear_face_patch,
    warp_plane_patch,
)
from robustbench_lite.worlds.fusion_world import CAMERA, Scene, make_scenes, object_pixels, toy_ap


@pytest.mark.parametrize("pitch", [0.0, 0.05])
def test_ground_homography_matches_ray_casting(pitch: float) -> None:
    """H^-1 of each pixel centre equals the renderer's ray / ground-plane intersection."""
    from dataclasses import replace

    cam = replace(CAMERA, pitch_rad=pitch)
    origin, dirs = cam.rays(1)
    down = dirs[..., 2] < -1e-6
    t = -origin[2] / dirs[..., 2]
    hit = (origin + t[..., None] * dirs)[..., :2][down]
    v, u = torch.meshgrid(torch.arange(cam.height_px), torch.arange(cam.width_px), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1).double()[down]
    back = pix @ torch.linalg.inv(ground_homography(cam.projection())).T
    torch.testing.assert_close(back[:, :2] / back[:, 2:], hit, rtol=1e-9, atol=1e-6)


def test_patch_mask_spans_the_projected_corners() -> None:
    """The warped mask's pixel extent is the projected rectangle's (rows within 1 px; columns
    within 2 px, since the slanted side edges move ~2 px per row near the corners)."""
    p = CAMERA.projection()
    gp = ground_patch((7.3, 0.5), (2.0, 2.5))
    _, inside = patch_coordinates(p, gp, CAMERA.height_px, CAMERA.width_px)
    corners = torch.tensor(
        [[7.3 + dx * 1.25, 0.5 + dy * 1.0, 0.0] for dx in (-1, 1) for dy in (-1, 1)],
        dtype=torch.float64,
    )
    uv, depth = project_points(p, corners)
    assert bool((depth > 0).all())
    rows, cols = inside.nonzero(as_tuple=True)
    assert (
        abs(int(rows.min()) - float(uv[:, 1].min())) <= 1
        and abs(int(rows.max()) - float(uv[:, 1].max())) <= 1
    )
    assert (
        abs(int(cols.min()) - float(uv[:, 0].min())) <= 2
        and abs(int(cols.max()) - float(uv[:, 0].max())) <= 2
    )
    far = (
        project_points(p, torch.tensor([[12.0, 0.5, 0.0]], dtype=torch.float64))[0]
        .round()
        .long()[0]
    )
    assert not inside[far[1], far[0]]


def test_warp_changes_only_the_patch_pixels_and_is_differentiable() -> None:
    img = torch.rand(
        2, 3, CAMERA.height_px, CAMERA.width_px, generator=torch.Generator().manual_seed(0)
    )
    tex = torch.rand(1, 3, 16, 16, requires_grad=True)
    out, mask = warp_plane_patch(
        img, tex, CAMERA.projection(), rear_face_patch(14.0, 1.0, 0.75, (1.0, 1.0))
    )
    assert 0 < int(mask.sum()) < 0.01 * mask.numel()
    assert torch.equal(out[:, :, ~mask], img[:, :, ~mask])
    out.sum().backward()
    assert tex.grad is not None and float(tex.grad.abs().sum()) > 0
    with pytest.raises(DataError, match="must be"):
        warp_plane_patch(img[0], tex, CAMERA.projection(), ground_patch((7.0, 0.0), (1.0, 1.0)))


def test_rear_face_patch_lands_on_the_rendered_box() -> None:
    _, scenes = make_scenes(3, seed=11)
    for s in scenes:
        box = s.target_box()
        rear = rear_face_patch(
            float(box[0] - box[2] / 2), float(box[1]), float(box[4] / 2), (1.0, 1.0)
        )
        _, inside = patch_coordinates(CAMERA.projection(), rear, CAMERA.height_px, CAMERA.width_px)
        assert int(inside.sum()) > 0
        assert bool(
            object_pixels(s)[inside].all()
        )  # every patch pixel is on a box, none on the road


def test_toy_ap_perfect_and_empty() -> None:
    scene = Scene(
        torch.tensor(
            [[15.2, 3.4, 4.0, 2.0, 1.5, 1.0], [20.0, -4.0, 4.0, 2.0, 1.5, 0.0]], dtype=torch.float64
        ),
        (0.0, 0.0, 0.0),
    )
    maps = torch.zeros(1, 32, 32)
    maps[0, 15, int(16 - 3.4)] = 0.9
    assert toy_ap(maps, [scene]) == pytest.approx(1.0)
    maps[0, 20, int(16 + 4.0)] = 0.95  # a confident false positive on the decoy ranks first
    assert toy_ap(maps, [scene]) == pytest.approx(0.5)
    assert toy_ap(torch.zeros(1, 32, 32), [scene]) == 0.0


def test_kitti_ground_patch_lands_on_lidar_ground_points() -> None:
    """Real calibration: a 2 x 2.5 m ground rectangle 8 m ahead, projected with
    P2 @ R0_rect @ Tr_velo_to_cam, covers exactly the pixels where LiDAR ground returns inside
    the rectangle project, and none of those from 11-14 m."""
    data_dir_or_skip("kitti_object_3frames")
    from robustbench_lite.datasets import kitti

    for frame in kitti.frames():
        pts = frame.points.double()
        road = (pts[:, 0] > 5) & (pts[:, 0] < 15) & (pts[:, 1].abs() < 3) & (pts[:, 2] < -1.4)
        z0 = float(pts[road, 2].median())
        assert -1.9 < z0 < -1.55, f"{frame.frame_id}: road at z = {z0:.2f} m, expected about -1.73"
        h, w = frame.image.shape[1:]
        _, inside = patch_coordinates(
            frame.projection, ground_patch((8.0, 0.0), (2.0, 2.5), ground_z=z0), h, w
        )
        near = pts[
            ((pts[:, 0] - 8).abs() < 1.1)
            & (pts[:, 1].abs() < 0.85)
            & ((pts[:, 2] - z0).abs() < 0.1)
        ]
        far = pts[
            (pts[:, 0] > 11)
            & (pts[:, 0] < 14)
            & (pts[:, 1].abs() < 1)
            & ((pts[:, 2] - z0).abs() < 0.1)
        ]
        assert len(near) > 100 and len(far) > 20
        for group, expected in ((near, 1.0), (far, 0.0)):
            uv = project_points(frame.projection, group[:, :3])[0].round().long()
            ok = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
            assert float(inside[uv[ok, 1], uv[ok, 0]].double().mean()) == expected, frame.frame_id


def test_kitti_downscaled_projection_and_bev() -> None:
    data_dir_or_skip("kitti_object_3frames")
    from robustbench_lite.datasets import kitti

    full, small = kitti.frames(), kitti.frames((96, 320))
    inputs, labels = kitti.load(size=(96, 320))
    x = inputs["camera"]
    assert x.shape == (3, 3, 96, 320) and labels.tolist() == [1, 1, 1]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    for f, s in zip(full, small):
        pts = f.points[:2000, :3].double()
        uv_full, d = project_points(f.projection, pts)
        uv_small, _ = project_points(s.projection, pts)
        sx, sy = 320 / f.image.shape[2], 96 / f.image.shape[1]
        ok = d > 0
        torch.testing.assert_close(
            uv_small[ok], (uv_full[ok] + 0.5) * torch.tensor([sx, sy], dtype=torch.float64) - 0.5
        )
        bev = kitti.lidar_bev(f.points)
        assert bev.shape == (2, 32, 32) and 0 < float(bev[0].mean()) < 0.5
    cars = [lab for lab in full[1].labels if lab[0] == "Car"]
    assert len(cars) == 1 and math.isclose(cars[0][1][12], 58.49)
    with pytest.raises(DataError, match="split='test'"):
        kitti.load(split="train")

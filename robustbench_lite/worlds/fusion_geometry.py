"""Pinhole camera geometry for camera+LiDAR fusion attacks: projections and plane homographies.

Frames: the ego/LiDAR frame has x forward, y left, z up (metres), as in KITTI's velodyne frame.
The camera frame is OpenCV's (x right, y down, z forward). A 3x4 projection matrix ``P`` maps
homogeneous ego points to homogeneous pixels; pixel centres sit at integer ``(u, v)``.

A planar patch is placed exactly by a homography: for a plane spanned by an origin ``o`` and
two axes ``a``, ``b`` (metres), ``H = P @ [a | b | o]`` (``o`` homogeneous) maps plane coordinates
``(s, t, 1)`` to pixels. The ground plane ``z = z0`` uses ``a = e_x``, ``b = e_y``, ``o = z0 e_z``;
a box's rear face uses ``a = e_y``, ``b = e_z``. :func:`warp_plane_patch` renders a texture through
the inverse homography (bilinear, differentiable in the texture), so the patch lands where the
model's own projection says it does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustbench_lite.core.errors import DataError


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera mounted on the ego vehicle.

    Args:
        height_px, width_px: image size in pixels.
        focal_px: focal length in pixels (square pixels).
        cx, cy: principal point in pixels.
        mount_height_m: camera height above the ground plane z = 0, metres.
        pitch_rad: downward tilt of the optical axis, radians (0 = level).
    """

    height_px: int = 48
    width_px: int = 96
    focal_px: float = 64.0
    cx: float = 47.5
    cy: float = 12.0
    mount_height_m: float = 1.6
    pitch_rad: float = 0.0

    def intrinsics(self) -> torch.Tensor:
        """K, shape (3, 3), float64."""
        f = self.focal_px
        return torch.tensor(
            [[f, 0.0, self.cx], [0.0, f, self.cy], [0.0, 0.0, 1.0]], dtype=torch.float64
        )

    def rotation(self) -> torch.Tensor:
        """R (3, 3) float64: ego-frame directions to camera-frame directions."""
        base = torch.tensor(
            [[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], dtype=torch.float64
        )
        c, s = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        pitch = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]], dtype=torch.float64)
        return pitch @ base

    def position(self) -> torch.Tensor:
        """Camera centre in the ego frame, (3,) float64."""
        return torch.tensor([0.0, 0.0, self.mount_height_m], dtype=torch.float64)

    def projection(self) -> torch.Tensor:
        """P = K [R | -R t], shape (3, 4) float64."""
        r = self.rotation()
        rt = torch.cat([r, (-r @ self.position())[:, None]], dim=1)
        return self.intrinsics() @ rt

    def rays(self, supersample: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Ray origins (3,) and unit directions (H*s, W*s, 3) in the ego frame, float64.

        With ``supersample`` s, each pixel is split into s x s sub-pixels (centres at offsets
        ``(k + 0.5) / s - 0.5``).
        """
        s = supersample
        off = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
        us = (torch.arange(self.width_px, dtype=torch.float64)[:, None] + off).reshape(-1)
        vs = (torch.arange(self.height_px, dtype=torch.float64)[:, None] + off).reshape(-1)
        v, u = torch.meshgrid(vs, us, indexing="ij")
        pix = torch.stack([u, v, torch.ones_like(u)], dim=-1)
        d_cam = pix @ torch.linalg.inv(self.intrinsics()).T
        d_ego = d_cam @ self.rotation()  # R^T d for row vectors
        return self.position(), d_ego / d_ego.norm(dim=-1, keepdim=True)


def project_points(p: torch.Tensor, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project ego points ``pts`` (..., 3) with ``P`` (3, 4): pixels (..., 2) and depth (...,)."""
    homo = torch.cat([pts, torch.ones_like(pts[..., :1])], dim=-1).to(p.dtype)
    uvw = homo @ p.T
    depth = uvw[..., 2]
    return uvw[..., :2] / depth.unsqueeze(-1), depth


def plane_homography(
    p: torch.Tensor, origin: torch.Tensor, axis_s: torch.Tensor, axis_t: torch.Tensor
) -> torch.Tensor:
    """H (3, 3): plane coordinates (s, t, 1) in metres to homogeneous pixels.

    The plane point is ``origin + s * axis_s + t * axis_t`` (ego frame, metres).
    """
    basis = torch.stack(
        [
            torch.cat([axis_s, axis_s.new_zeros(1)]),
            torch.cat([axis_t, axis_t.new_zeros(1)]),
            torch.cat([origin, origin.new_ones(1)]),
        ],
        dim=1,
    ).to(p.dtype)
    return p @ basis


def ground_homography(p: torch.Tensor, ground_z: float = 0.0) -> torch.Tensor:
    """H (3, 3) mapping ground points (x, y, 1) on the plane z = ground_z to pixels."""
    e = torch.eye(3, dtype=p.dtype)
    return plane_homography(p, ground_z * e[2], e[0], e[1])


@dataclass(frozen=True)
class PlanarPatch:
    """A rectangle on a plane in the world, where a printed patch is placed.

    Args:
        origin: (3,) ego-frame centre of the rectangle, metres.
        axis_s, axis_t: (3,) unit vectors along the rectangle's width and height.
        size_m: (width, height) in metres along ``axis_s`` and ``axis_t``. The texture's
            column index runs along ``axis_s`` and its row index along ``-axis_t`` (rows go down
            for a vertical face, ``axis_t = e_z``).
    """

    origin: torch.Tensor
    axis_s: torch.Tensor
    axis_t: torch.Tensor
    size_m: tuple[float, float]

    def scaled(self, factor: float) -> PlanarPatch:
        """The same patch, ``factor`` times as large about its centre (EOT rescaling)."""
        w, h = self.size_m
        return PlanarPatch(self.origin, self.axis_s, self.axis_t, (w * factor, h * factor))


def ground_patch(
    centre_xy: tuple[float, float], size_m: tuple[float, float], ground_z: float = 0.0
) -> PlanarPatch:
    """A ground rectangle ``size_m`` = (lateral width, depth) centred at ``centre_xy``.

    Texture columns run right to left across the road (along +y), rows run from far to near
    (along -x), so the texture looks upright from the camera.
    """
    e = torch.eye(3, dtype=torch.float64)
    origin = torch.tensor([centre_xy[0], centre_xy[1], ground_z], dtype=torch.float64)
    return PlanarPatch(origin, -e[1], e[0], size_m)


def rear_face_patch(
    box_rear_x: float, centre_y: float, centre_z: float, size_m: tuple[float, float]
) -> PlanarPatch:
    """A patch on the vertical plane x = ``box_rear_x`` (a box's rear face) facing the camera."""
    e = torch.eye(3, dtype=torch.float64)
    origin = torch.tensor([box_rear_x, centre_y, centre_z], dtype=torch.float64)
    return PlanarPatch(origin, -e[1], e[2], size_m)


def patch_coordinates(
    p: torch.Tensor, patch: PlanarPatch, height_px: int, width_px: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel texture coordinates in [-1, 1] (grid_sample convention) and the inside mask.

    Returns ``grid`` (H, W, 2) float32 and ``inside`` (H, W) bool: the pixel centre's ray hits
    the rectangle (through the exact inverse homography) in front of the camera.
    """
    w, h = patch.size_m
    h_img = plane_homography(p, patch.origin, patch.axis_s, patch.axis_t)
    v, u = torch.meshgrid(
        torch.arange(height_px, dtype=torch.float64),
        torch.arange(width_px, dtype=torch.float64),
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1)
    plane = pix @ torch.linalg.inv(h_img).T
    in_front = plane[..., 2] > 0  # H^-1 (u, v, 1) = (s, t, 1) / depth
    st = plane[..., :2] / plane[..., 2:3]
    gx = st[..., 0] / (w / 2)
    gy = -st[..., 1] / (h / 2)
    inside = in_front & (gx.abs() <= 1) & (gy.abs() <= 1)
    return torch.stack([gx, gy], dim=-1).float(), inside


def warp_plane_patch(
    image: torch.Tensor, texture: torch.Tensor, p: torch.Tensor, patch: PlanarPatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste ``texture`` (N or 1, 3, h, w) in [0, 1] onto ``image`` (N, 3, H, W) through ``patch``.

    Pixels whose centre falls inside the rectangle take the bilinearly sampled texture; all
    other pixels are returned bit-identical. Returns the new image and the mask (H, W) bool.
    Differentiable with respect to ``texture``.
    """
    if image.dim() != 4 or texture.dim() != 4:
        raise DataError(
            f"image {tuple(image.shape)} and texture {tuple(texture.shape)} must be (N, 3, H, W)"
        )
    n, _, height, width = image.shape
    grid, inside = patch_coordinates(p, patch, height, width)
    grid = grid.to(image.device)[None].expand(texture.shape[0], -1, -1, -1)
    sampled = F.grid_sample(
        texture, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    mask = inside.to(image.device)
    return torch.where(mask[None, None], sampled.expand(n, -1, -1, -1), image), mask

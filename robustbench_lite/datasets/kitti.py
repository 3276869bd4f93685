"""Three real KITTI object frames from the data folder (``$RBL_DATA_DIR/kitti_object_3frames``).

KITTI is (c) Geiger, Lenz, Stiller, Urtasun, licensed CC BY-NC-SA 3.0 (non-commercial, share
alike); it is read in place and never copied into this package. Cite Geiger et al., CVPR 2012.

:func:`frames` gives each frame's camera image (3, H, W) in [0, 1] (optionally downscaled by
area averaging), the velodyne points (P, 4) (x forward, y left, z up, reflectance; the same
axes as the toy world's ego frame, ground near z = -1.73 m), the calibration and the labels.
``Frame.projection`` is ``P2 @ R0_rect @ Tr_velo_to_cam`` (3, 4), adjusted to the image size, so
:mod:`robustbench_lite.worlds.fusion_geometry` places ground or rear-face patches exactly as on the toy.
:func:`lidar_bev` turns the points into the toy's (2, 32, 32) occupancy / height BEV map.

``load(split="test", size=(h, w))`` returns the 3 frames as mapping inputs (the same keys as
``fusion-world``, for a user's fusion model built for KITTI frames) and labels (3,) of 1 ("the
target object is detected"); there is no training split. The geometry is moved to the toy
world's convention, the road at z = 0 (velodyne z + 1.73 m):

* ``camera`` (3, 3, h, w) in [0, 1]; ``lidar`` (3, 2, 32, 32) from :func:`lidar_bev`;
* ``projection`` (3, 3, 4): road-frame points to pixels of the resized image (the patch
  attacks place patches with it instead of the model's camera);
* ``boxes`` (3, M, 6): labelled objects (not DontCare) as (x, y, length, width, height, is_car)
  in the road frame, axis-aligned (KITTI's rotation_y is dropped; the 3 frames' cars face
  along x within a few degrees), padded with is_car = -1; Car, Van and Truck count as cars;
* ``target_xy`` (3, 2), ``target_lwh`` (3, 3): the nearest car ahead, or the nearest object
  when a frame has no car (frame 000000 holds one pedestrian).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.core.types import Inputs
from robustbench_lite.datasets import Domain, check_split, data_folder

#: Camera images in [0, 1]; no default threat (name one with --threat).
DOMAIN = Domain(bounds=(0.0, 1.0))

FOLDER = "kitti_object_3frames"
FRAME_IDS = ("000000", "000001", "000002")
LIDAR_HEIGHT_M = 1.73  #: the velodyne's nominal height above the road


@dataclass(frozen=True)
class Frame:
    """One KITTI frame: image (3, H, W) float32, points (P, 4) float32, projection (3, 4) float64."""

    frame_id: str
    image: torch.Tensor
    points: torch.Tensor
    projection: torch.Tensor
    labels: tuple[tuple[str, tuple[float, ...]], ...]


def parse_calib(path: Path) -> dict[str, np.ndarray]:
    """KITTI calib file -> arrays by key (P2 (3, 4), R0_rect (3, 3), Tr_velo_to_cam (3, 4), ...)."""
    out: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, sep, values = line.partition(":")
        if not sep or not values.strip():
            continue
        arr = np.array([float(v) for v in values.split()], dtype=np.float64)
        shape = {"R0_rect": (3, 3)}.get(key.strip(), (3, 4) if arr.size == 12 else (arr.size,))
        out[key.strip()] = arr.reshape(shape)
    for key in ("P2", "R0_rect", "Tr_velo_to_cam"):
        if key not in out:
            raise DataError(f"{path}: calibration has no {key}; see {FOLDER}/README.md")
    return out


def velo_to_image(calib: dict[str, np.ndarray]) -> np.ndarray:
    """P2 @ R0_rect @ Tr_velo_to_cam, (3, 4): homogeneous velodyne points to pixels."""
    r0 = np.eye(4)
    r0[:3, :3] = calib["R0_rect"]
    tr = np.eye(4)
    tr[:3, :4] = calib["Tr_velo_to_cam"]
    result: np.ndarray = calib["P2"] @ r0 @ tr
    return result


def scaled_projection(p: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """``p`` for an image resized by (sx, sy), pixel centres kept: u' = (u + 0.5) sx - 0.5."""
    a = torch.tensor(
        [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], dtype=p.dtype
    )
    return a @ p


def _read_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image  # pillow comes with matplotlib, a runtime dependency
    except ImportError:  # pragma: no cover
        raise DataError("reading KITTI PNGs needs pillow; pip install pillow") from None
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read the KITTI image ({exc}); see {FOLDER}/README.md"
        ) from None


@lru_cache(maxsize=4)
def frames(size: tuple[int, int] | None = None) -> tuple[Frame, ...]:
    """The 3 frames; ``size`` = (h, w) resizes images (area averaging) and their projection."""
    root = data_folder(FOLDER)
    out = []
    for fid in FRAME_IDS:
        img = torch.from_numpy(
            _read_image(root / "image_2" / f"{fid}.png").astype(np.float32) / 255
        ).permute(2, 0, 1)
        raw = np.fromfile(root / "velodyne" / f"{fid}.bin", dtype=np.float32)
        if raw.size % 4:
            raise DataError(
                f"{root / 'velodyne' / fid}.bin: {raw.size} floats, not (P, 4); the file is damaged"
            )
        p = torch.from_numpy(velo_to_image(parse_calib(root / "calib" / f"{fid}.txt")))
        if size is not None:
            h, w = int(size[0]), int(size[1])
            p = scaled_projection(p, w / img.shape[2], h / img.shape[1])
            img = torch.nn.functional.adaptive_avg_pool2d(img[None], (h, w))[0]
        labels = []
        for line in (root / "label_2" / f"{fid}.txt").read_text().splitlines():
            parts = line.split()
            if parts:
                labels.append((parts[0], tuple(float(v) for v in parts[1:])))
        out.append(Frame(fid, img, torch.from_numpy(raw.reshape(-1, 4)), p, tuple(labels)))
    return tuple(out)


def lidar_bev(points: torch.Tensor, grid: int = 32, cell_m: float = 1.0) -> torch.Tensor:
    """(2, grid, grid) BEV occupancy and height above the road / 2 m of points 0.3 m+ above it.

    Rows: x forward 0..grid*cell_m; columns: y from +grid*cell_m/2 (left) to the right.
    """
    x, y, z = points[:, 0], points[:, 1], points[:, 2] + LIDAR_HEIGHT_M
    row = torch.floor(x / cell_m).long()
    col = torch.floor(grid / 2 - y / cell_m).long()
    keep = (row >= 0) & (row < grid) & (col >= 0) & (col < grid) & (z > 0.3) & (z < 3.0)
    idx = row[keep] * grid + col[keep]
    occ = torch.zeros(grid * grid).index_fill_(0, idx, 1.0)
    height = torch.zeros(grid * grid).scatter_reduce_(0, idx, z[keep] / 2, reduce="amax")
    return torch.stack([occ, height]).reshape(2, grid, grid)


CAR_TYPES = ("Car", "Van", "Truck")


def road_boxes(frame: Frame, calib: dict[str, np.ndarray]) -> torch.Tensor:
    """(M, 6) labelled objects of ``frame`` as (x, y, length, width, height, is_car) in the road
    frame (velodyne axes, z = 0 on the road), axis-aligned; DontCare rows are dropped."""
    r0 = np.eye(4)
    r0[:3, :3] = calib["R0_rect"]
    tr = np.eye(4)
    tr[:3, :4] = calib["Tr_velo_to_cam"]
    cam_to_velo = np.linalg.inv(r0 @ tr)
    rows = []
    for kind, values in frame.labels:
        if kind == "DontCare" or len(values) < 14:
            continue
        h, w, length = values[7:10]
        bottom = cam_to_velo @ np.array([values[10], values[11], values[12], 1.0])
        rows.append([bottom[0], bottom[1], length, w, h, 1.0 if kind in CAR_TYPES else 0.0])
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 6)


def road_projection(p: torch.Tensor) -> torch.Tensor:
    """``p`` (3, 4) for road-frame points: velodyne z = road z - :data:`LIDAR_HEIGHT_M`."""
    shift = torch.eye(4, dtype=p.dtype)
    shift[2, 3] = -LIDAR_HEIGHT_M
    return p @ shift


def load(split: str = "test", size: tuple[int, int] = (96, 320)) -> tuple[Inputs, torch.Tensor]:
    """The 3 frames as mapping inputs (module docstring) and labels (3,) of 1; only the
    ``test`` split exists."""
    check_split(split)
    if split != "test":
        raise DataError(f"{FOLDER} holds 3 frames for checks, no {split!r} split; use split='test'")
    fr = frames((int(size[0]), int(size[1])))
    root = data_folder(FOLDER)
    boxes = [road_boxes(f, parse_calib(root / "calib" / f"{f.frame_id}.txt")) for f in fr]
    packed = torch.zeros(len(fr), max(len(b) for b in boxes), 6)
    packed[..., 5] = -1.0
    targets = []
    for i, b in enumerate(boxes):
        packed[i, : len(b)] = b.float()
        pool = b[b[:, 5] > 0.5] if bool((b[:, 5] > 0.5).any()) else b
        ahead = pool[pool[:, 0] > 0] if bool((pool[:, 0] > 0).any()) else pool
        targets.append(ahead[ahead[:, 0].argmin()])
    target = torch.stack(targets).float()
    x = {
        "camera": torch.stack([f.image for f in fr]),
        "lidar": torch.stack([lidar_bev(f.points) for f in fr]),
        "projection": torch.stack([road_projection(f.projection) for f in fr]).float(),
        "target_xy": target[:, :2].contiguous(),
        "target_lwh": target[:, 2:5].contiguous(),
        "boxes": packed,
    }
    return x, torch.ones(len(fr), dtype=torch.long)

"""A procedural toy driving world for camera+LiDAR fusion detectors (CPU plan of Cheng et al.).

Scenes: a 32 x 32 m bird's-eye-view (BEV) grid ahead of the ego vehicle at 1 m/cell (rows: x
forward 0..32 m, columns: y left +16..-16 m). Each scene holds 1-4 axis-aligned box **cars**
(the class to detect) and 0-3 **decoys** (boxes of the same size distribution, so LiDAR alone
cannot tell them apart; only the camera sees that cars are saturated-coloured with a dark window
band and decoys are grey blocks). Every object stands 12-29 m ahead, inside the camera's view.

Inputs (a mapping, :data:`robustbench_lite.core.types.Inputs`):

* ``"camera"``: (N, 3, 48, 96) in [0, 1], rendered by exact ray casting (2x2 supersampling)
  through :class:`~robustbench_lite.worlds.fusion_geometry.PinholeCamera`: sky, a textured road with
  dashed lane marks, grass verges, shaded box faces.
* ``"lidar"``: (N, 2, 32, 32) BEV occupancy and height / 2 m of the object footprints, with
  distance-dependent dropout (30-60 %), height noise and 1 % ground-clutter cells.
* ``"target_xy"``: (N, 2) ego-frame (x, y) in metres of the object whose detection a
  :class:`DetectionView` reports (the nearest car); ``"target_lwh"``: (N, 3) its box length,
  width and height in metres (where an object-oriented patch goes). Attacks never change them.

Detections are CenterPoint-style: the detector's score map (N, 32, 32) in [0, 1], 3x3 max-pool
peak selection, top-K. Toy AP matches detections to car centres within 2 m.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lite.core.errors import DataError
from robustbench_lite.worlds.fusion_geometry import PinholeCamera

GRID = 32  #: BEV cells per side (1 m each)
CAMERA = PinholeCamera()
CAR_COLOURS = (
    (0.85, 0.12, 0.1),
    (0.1, 0.25, 0.85),
    (0.9, 0.75, 0.05),
    (0.1, 0.6, 0.2),
    (0.9, 0.45, 0.05),
)
DETECT_THRESHOLD = 0.3
MATCH_DISTANCE_M = 2.0


@dataclass(frozen=True)
class Scene:
    """Ground truth of one scene: boxes (M, 6) = (x, y, length, width, height, is_car), metres."""

    boxes: torch.Tensor
    road_phase: tuple[float, float, float]

    @property
    def cars(self) -> torch.Tensor:
        """(C, 2) car centres (x, y)."""
        return self.boxes[self.boxes[:, 5] > 0.5, :2]

    @property
    def target_xy(self) -> torch.Tensor:
        """(2,) centre of the nearest car (the attack target)."""
        cars = self.cars
        return cars[cars[:, 0].argmin()]

    def target_box(self) -> torch.Tensor:
        """(6,) the target car's box."""
        cars = self.boxes[self.boxes[:, 5] > 0.5]
        return cars[cars[:, 0].argmin()]


def cell_centres() -> torch.Tensor:
    """(GRID, GRID, 2) ego (x, y) of every BEV cell centre; row = x index, column = y index."""
    i = torch.arange(GRID, dtype=torch.float64) + 0.5
    x, j = torch.meshgrid(i, i, indexing="ij")
    return torch.stack([x, GRID / 2 - j], dim=-1)


def sample_scene(gen: torch.Generator) -> Scene:
    """One random scene (1-4 cars, 0-3 decoys, no overlapping footprints)."""

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    n_cars = 1 + int(torch.randint(4, (), generator=gen))
    n_decoys = int(torch.randint(4, (), generator=gen))
    boxes: list[list[float]] = []
    for k in range(n_cars + n_decoys):
        for _ in range(100):
            x = u(12.0, 29.0)
            half = min(0.62 * x - 1.5, 14.0)
            y = u(-half, half)
            if all(abs(x - b[0]) > 5.0 or abs(y - b[1]) > 3.0 for b in boxes):
                boxes.append(
                    [x, y, u(3.6, 4.6), u(1.7, 2.1), u(1.35, 1.75), 1.0 if k < n_cars else 0.0]
                )
                break
    phase = (u(0, 6.3), u(0, 6.3), u(-0.05, 0.05))
    return Scene(torch.tensor(boxes, dtype=torch.float64), phase)


# ---------------------------------------------------------------------- camera rendering
def _ground_colour(xy: torch.Tensor, phase: tuple[float, float, float]) -> torch.Tensor:
    x, y = xy[..., 0], xy[..., 1]
    tex = 0.33 + phase[2] + 0.04 * torch.sin(1.7 * x + phase[0]) * torch.sin(2.3 * y + phase[1])
    tex = tex + 0.03 * torch.sin(7.1 * x + 3.3 * y + phase[1])
    road = torch.stack([tex, tex, tex * 1.05], dim=-1)
    dash = (((y.abs() - 1.8).abs() < 0.09) & (torch.remainder(x + phase[0], 6.0) < 3.0)).unsqueeze(
        -1
    )
    road = torch.where(dash, torch.full_like(road, 0.9), road)
    grass = torch.stack([0.2 + 0.5 * tex * 0.3, 0.45 + tex * 0.3, 0.15 + 0.0 * tex], dim=-1)
    return torch.where((y.abs() > 5.5).unsqueeze(-1), grass, road)


def _box_hits(
    origin: torch.Tensor, dirs: torch.Tensor, boxes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab ray/box intersection for rays (R, 3) and boxes (B, 6): distance (R, B), inf when
    missed, and the hit face's axis (R, B): 0 = rear/front, 1 = side, 2 = top."""
    zero = torch.zeros_like(boxes[:, 0])
    lo = torch.stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, zero], dim=-1)
    hi = torch.stack(
        [boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2, boxes[:, 4]], dim=-1
    )
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)[:, None, :]
    t0, t1 = (lo[None] - origin) * inv, (hi[None] - origin) * inv
    enter, face = torch.minimum(t0, t1).max(dim=-1)
    leave = torch.maximum(t0, t1).min(dim=-1).values
    hit = (enter <= leave) & (enter > 0)
    return torch.where(hit, enter, torch.full_like(enter, math.inf)), face


@lru_cache(maxsize=4)
def _rays(camera: PinholeCamera, supersample: int) -> tuple[torch.Tensor, torch.Tensor]:
    origin, dirs = camera.rays(supersample)
    return origin.float(), dirs.reshape(-1, 3).float()


def _box_colours(boxes: torch.Tensor, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Base colour per box (B, 3) (cars from the palette, decoys grey) and face shading (R, 1)."""
    shade = torch.tensor([1.0, 0.75, 1.15])[face][:, None]
    palette = torch.tensor(CAR_COLOURS)
    idx = torch.arange(len(boxes)) % len(CAR_COLOURS)
    grey = (0.55 + 0.1 * torch.sin(7.0 * boxes[:, 0]))[:, None].expand(-1, 3)
    base = torch.where(boxes[:, 5:6] > 0.5, palette[idx], grey)
    return base, shade


def render_camera(
    scene: Scene, camera: PinholeCamera = CAMERA, supersample: int = 2
) -> torch.Tensor:
    """The camera image (3, H, W) float32 in [0, 1] of ``scene`` (exact ray casting)."""
    origin, dirs = _rays(camera, supersample)
    t_ground = torch.where(
        dirs[:, 2] < -1e-7,
        -origin[2] / dirs[:, 2].clamp(max=-1e-7),
        torch.full_like(dirs[:, 0], math.inf),
    )
    sky = torch.stack(
        [0.55 + 0.3 * dirs[:, 2], 0.7 + 0.2 * dirs[:, 2], torch.full_like(dirs[:, 2], 0.95)], dim=-1
    )
    ground_pts = origin + t_ground.clamp(max=1e6)[:, None] * dirs
    colour = torch.where(
        torch.isfinite(t_ground)[:, None], _ground_colour(ground_pts[:, :2], scene.road_phase), sky
    )
    boxes = scene.boxes.float()
    if len(boxes):
        dist, face = _box_hits(origin, dirs, boxes)
        best, which = dist.min(dim=1)
        hit = best < t_ground
        f = face.gather(1, which[:, None])[:, 0]
        base, shade = _box_colours(boxes, f)
        z = origin[2] + best.clamp(max=1e6) * dirs[:, 2]
        h = boxes[which, 4]
        window = (boxes[which, 5] > 0.5) & (z > 0.62 * h) & (z < 0.9 * h) & (f != 2)
        c = torch.where(window[:, None], torch.full((1, 3), 0.08), base[which] * shade)
        colour = torch.where(hit[:, None], c, colour)
    img = colour.reshape(camera.height_px * supersample, camera.width_px * supersample, 3).permute(
        2, 0, 1
    )
    return F.avg_pool2d(img[None].clamp(0, 1), supersample)[0]


# ---------------------------------------------------------------------- lidar
def render_lidar(scene: Scene, gen: torch.Generator) -> torch.Tensor:
    """The BEV LiDAR map (2, GRID, GRID) float32: occupancy and height / 2 m."""
    centres = cell_centres()
    occ = torch.zeros(GRID, GRID, dtype=torch.float64)
    height = torch.zeros(GRID, GRID, dtype=torch.float64)
    for box in scene.boxes:
        inside = ((centres[..., 0] - box[0]).abs() <= box[2] / 2) & (
            (centres[..., 1] - box[1]).abs() <= box[3] / 2
        )
        drop = 0.3 + 0.3 * box[0] / GRID
        keep = inside & (torch.rand(GRID, GRID, generator=gen, dtype=torch.float64) > drop)
        occ = torch.where(keep, torch.ones_like(occ), occ)
        noisy = box[4] + 0.08 * torch.randn(GRID, GRID, generator=gen, dtype=torch.float64)
        height = torch.where(keep, noisy, height)
    clutter = (torch.rand(GRID, GRID, generator=gen, dtype=torch.float64) < 0.01) & (occ == 0)
    occ = torch.where(clutter, torch.ones_like(occ), occ)
    height = torch.where(
        clutter, 0.5 * torch.rand(GRID, GRID, generator=gen, dtype=torch.float64), height
    )
    return torch.stack([occ, height / 2.0]).float()


def make_scenes(n: int, seed: int) -> tuple[dict[str, torch.Tensor], list[Scene]]:
    """``n`` seeded scenes: the inputs mapping (camera, lidar, target_xy) and the ground truth."""
    if n < 1:
        raise DataError(f"n={n}: ask for at least one scene")
    gen = torch.Generator().manual_seed(seed)
    scenes = [sample_scene(gen) for _ in range(n)]
    camera = torch.stack([render_camera(s) for s in scenes])
    lidar = torch.stack([render_lidar(s, gen) for s in scenes])
    target = torch.stack([s.target_xy for s in scenes]).float()
    lwh = torch.stack([s.target_box()[2:5] for s in scenes]).float()
    return {"camera": camera, "lidar": lidar, "target_xy": target, "target_lwh": lwh}, scenes


def object_pixels(scene: Scene, camera: PinholeCamera = CAMERA) -> torch.Tensor:
    """(H, W) bool: pixels whose centre ray hits an object box before the ground."""
    origin, dirs = _rays(camera, 1)
    t_ground = torch.where(
        dirs[:, 2] < -1e-7,
        -origin[2] / dirs[:, 2].clamp(max=-1e-7),
        torch.full_like(dirs[:, 0], math.inf),
    )
    if not len(scene.boxes):
        return torch.zeros(camera.height_px, camera.width_px, dtype=torch.bool)
    dist, _ = _box_hits(origin, dirs, scene.boxes.float())
    return (dist.min(dim=1).values < t_ground).reshape(camera.height_px, camera.width_px)


def heatmap_targets(
    scenes: list[Scene], *, cars_only: bool = True, sigma: float = 1.0
) -> torch.Tensor:
    """(N, GRID, GRID) Gaussian centre heatmaps (peak 1 at the cell holding each centre)."""
    centres = cell_centres()
    out = torch.zeros(len(scenes), GRID, GRID, dtype=torch.float64)
    for i, s in enumerate(scenes):
        pts = s.boxes[s.boxes[:, 5] > 0.5, :2] if cars_only else s.boxes[:, :2]
        for x, y in pts:
            row, col = int(x), int(GRID / 2 - y)
            c = centres[min(max(row, 0), GRID - 1), min(max(col, 0), GRID - 1)]
            d2 = ((centres - c) ** 2).sum(-1)
            out[i] = torch.maximum(out[i], torch.exp(-d2 / (2 * sigma**2)))
    return out.float()


# ---------------------------------------------------------------------- detections and AP
def peaks(score_map: torch.Tensor, k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` 3x3 local maxima of (N, GRID, GRID) scores: scores (N, k), ego xy (N, k, 2)."""
    pooled = F.max_pool2d(score_map[:, None], 3, stride=1, padding=1)[:, 0]
    local = torch.where(score_map >= pooled, score_map, torch.zeros_like(score_map))
    top = local.flatten(1).topk(k, dim=1)
    xy = cell_centres().reshape(-1, 2).float().to(score_map.device)[top.indices]
    return score_map.flatten(1).gather(1, top.indices), xy


def target_score(
    score_map: torch.Tensor, target_xy: torch.Tensor, radius_m: float = MATCH_DISTANCE_M
) -> torch.Tensor:
    """(N,) the highest score within ``radius_m`` of each target centre (differentiable)."""
    centres = cell_centres().float().to(score_map.device).reshape(1, -1, 2)
    near = (centres - target_xy[:, None, :]).norm(dim=-1) <= radius_m
    flat = score_map.flatten(1)
    return torch.where(near, flat, torch.zeros_like(flat)).amax(dim=1)


def mean_detection_score(score_map: torch.Tensor, k: int = 8, floor: float = 0.05) -> torch.Tensor:
    """(N,) mean score of the top-k peaks scoring >= ``floor`` (the best peak if none does)."""
    scores, _ = peaks(score_map, k)
    keep = scores >= floor
    keep[:, 0] = True
    return (scores * keep).sum(dim=1) / keep.sum(dim=1)


def toy_ap(
    score_maps: torch.Tensor, scenes: list[Scene], *, k: int = 8, floor: float = 0.05
) -> float:
    """All-point interpolated AP of car detections, matched greedily within 2 m of centres."""
    per_scene = detection_records(score_maps, scenes, k=k, floor=floor)
    return average_precision(
        [r for scene in per_scene for r in scene], sum(len(s.cars) for s in scenes)
    )


def detection_records(
    score_maps: torch.Tensor, scenes: list[Scene], *, k: int = 8, floor: float = 0.05
) -> list[list[tuple[float, bool]]]:
    """Per scene, its detections ``(score, matched a car)``: the top-``k`` peaks >= ``floor``,
    matched greedily (best score first) to car centres within 2 m; what :func:`toy_ap` ranks
    (so scenes scored in separate batches can be pooled into one AP)."""
    scores, xy = peaks(score_maps.detach(), k)
    out: list[list[tuple[float, bool]]] = []
    for i, scene in enumerate(scenes):
        records: list[tuple[float, bool]] = []
        gt = scene.cars.float().to(xy.device)
        used = torch.zeros(len(gt), dtype=torch.bool, device=xy.device)
        for j in scores[i].argsort(descending=True).tolist():
            s = float(scores[i, j])
            if s < floor:
                continue
            d = (gt - xy[i, j]).norm(dim=1).masked_fill(used, math.inf)
            hit = bool(len(gt)) and float(d.min()) <= MATCH_DISTANCE_M
            if hit:
                used[int(d.argmin())] = True
            records.append((s, hit))
        out.append(records)
    return out


def average_precision(records: list[tuple[float, bool]], n_gt: int) -> float:
    """All-point interpolated AP of pooled ``(score, hit)`` detections against ``n_gt`` cars
    (NaN when there are none)."""
    records = list(records)
    if n_gt == 0:
        return float("nan")
    records.sort(key=lambda r: -r[0])
    tp = torch.tensor([r[1] for r in records], dtype=torch.float64).cumsum(0)
    precision = tp / torch.arange(1, len(records) + 1, dtype=torch.float64)
    recall = tp / n_gt
    ap, prev_recall = 0.0, 0.0
    for idx in range(len(records)):
        if records[idx][1]:
            ap += float(precision[idx:].max()) * (float(recall[idx]) - prev_recall)
            prev_recall = float(recall[idx])
    return ap


# ---------------------------------------------------------------------- model view
def _check_mapping(inputs: object) -> None:
    if not isinstance(inputs, Mapping):
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise DataError(
            f"a fusion detector takes a mapping {{'camera', 'lidar', 'target_xy'}}, not a tensor of "
            f"shape {shape}; pass the input dict (see robustbench_lite.worlds.fusion_world.make_scenes)"
        )


class DetectionView(nn.Module):
    """A fusion detector seen as a 2-class classifier: "the target object is detected".

    ``forward(inputs)`` returns logits (N, 2) = (0, logit(s) - logit(0.3)) where s is the
    detector's best score within 2 m of ``inputs["target_xy"]``; class 1 wins exactly when the
    target is detected at the 0.3 threshold, so an untargeted attack on label 1 succeeds when the
    target object is suppressed. ``score_map(inputs)`` (N, GRID, GRID) gives the detections.

    Args:
        detector: a module whose ``forward(camera, lidar)`` returns scores (N, GRID, GRID) in [0, 1].
        camera: the camera geometry the detector was built for (attacks place patches with it).
    """

    def __init__(self, detector: nn.Module, camera: PinholeCamera = CAMERA) -> None:
        super().__init__()
        self.detector = detector
        self.camera = camera
        self.threshold = DETECT_THRESHOLD

    def score_map(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Detection scores (N, GRID, GRID) in [0, 1]."""
        _check_mapping(inputs)
        missing = [key for key in ("camera", "lidar") if key not in inputs]
        if missing:
            raise DataError(
                f"fusion detector inputs lack {missing}; they hold {sorted(inputs)}; pass "
                "{'camera': (N, 3, H, W), 'lidar': (N, 2, 32, 32), 'target_xy': (N, 2)}"
            )
        out: torch.Tensor = self.detector(inputs["camera"], inputs["lidar"])
        return out

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        _check_mapping(inputs)
        if "target_xy" not in inputs:
            raise DataError(
                "a DetectionView needs inputs['target_xy'] (N, 2), the target object's ego (x, y) in metres"
            )
        s = target_score(self.score_map(inputs), inputs["target_xy"]).clamp(1e-6, 1 - 1e-6)
        margin = torch.logit(s) - math.log(self.threshold / (1 - self.threshold))
        return torch.stack([torch.zeros_like(margin), margin], dim=1)

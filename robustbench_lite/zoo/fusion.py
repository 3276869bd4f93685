"""Toy camera+LiDAR fusion detectors on the procedural world of :mod:`robustbench_lite.worlds.fusion_world`.

Both output a CenterPoint-style car-centre score map (N, 32, 32) and are loaded as a
:class:`~robustbench_lite.worlds.fusion_world.DetectionView` (2-class logits: "the target car is
detected at score >= 0.3"); inputs are ``{"camera": (N, 3, 48, 96), "lidar": (N, 2, 32, 32),
"target_xy": (N, 2)}``.

* ``fusion-bev`` (BEV-lift fusion, LSS-lite): a stride-4 camera CNN predicts per feature pixel a
  16-bin depth distribution (4..34 m) and a 16-channel feature; their outer product is
  scattered along each pixel's ray into the BEV grid (exact geometry, sum pooling), concatenated
  with LiDAR BEV features and decoded by a 3-layer BEV CNN into the heatmap.
* ``fusion-query`` (object-query fusion, TransFusion-lite): a LiDAR BEV CNN proposes the top-8
  object peaks (cars and decoys alike; LiDAR cannot tell them apart). Each proposal's car-sized
  3D box is projected into the image, where a 4x4 grid of camera features (a full-resolution
  2-layer CNN, receptive field 5 px) is sampled and pooled; an MLP on [camera, LiDAR] features
  scores the query. Scores are written into the map at the proposal cells.

Training: focal loss on Gaussian centre heatmaps (CenterPoint), Adam, seeded data and weights,
one CPU thread; reported ``clean_accuracy`` = the fraction of test scenes whose target (nearest
car) is detected, plus the toy AP at 2 m.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lite.worlds.fusion_geometry import PinholeCamera, project_points
from robustbench_lite.worlds.fusion_world import (
    CAMERA,
    GRID,
    DetectionView,
    Scene,
    cell_centres,
    heatmap_targets,
    make_scenes,
    peaks,
    toy_ap,
)
from robustbench_lite.zoo import ZooEntry, register_zoo_model

__all__: list[str] = []

DEPTHS = torch.arange(4.0, 35.0, 2.0)  #: 16 depth bin centres, metres
CAR_PRIOR = (4.1, 1.9, 1.55)  #: length, width, height of the query box, metres


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU())


def _prior_bias(conv: nn.Conv2d) -> None:
    """CenterPoint's heatmap prior: bias -2.19 = logit(0.1)."""
    if conv.bias is not None:
        nn.init.constant_(conv.bias, -2.19)


def _lift_index(camera: PinholeCamera, stride: int, h_f: int, w_f: int) -> torch.Tensor:
    """(D * h_f * w_f,) BEV cell index of every (depth bin, feature pixel) frustum point, -1 outside."""
    inv_k = torch.linalg.inv(camera.intrinsics())
    v, u = torch.meshgrid(
        torch.arange(h_f, dtype=torch.float64) * stride + (stride - 1) / 2,
        torch.arange(w_f, dtype=torch.float64) * stride + (stride - 1) / 2,
        indexing="ij",
    )
    d = torch.stack([u, v, torch.ones_like(u)], dim=-1) @ inv_k.T @ camera.rotation()
    d = d / d[..., :1]  # unit forward (x) component
    pts = camera.position() + DEPTHS.double()[:, None, None, None] * d[None]
    row = torch.floor(pts[..., 0])
    col = torch.floor(GRID / 2 - pts[..., 1])
    ok = (row >= 0) & (row < GRID) & (col >= 0) & (col < GRID)
    return torch.where(ok, row * GRID + col, torch.full_like(row, -1)).long().reshape(-1)


class BevLiftFusion(nn.Module):
    """LSS-lite camera lift + LiDAR BEV, concatenated; returns car scores (N, 32, 32)."""

    lift: torch.Tensor

    def __init__(self, camera: PinholeCamera = CAMERA, channels: int = 16) -> None:
        super().__init__()
        self.cam = nn.Sequential(_conv(3, 16, 2), _conv(16, 32, 2), _conv(32, 32))
        self.depth = nn.Conv2d(32, len(DEPTHS), 1)
        self.feat = nn.Conv2d(32, channels, 1)
        self.lidar = nn.Sequential(_conv(2, 16), _conv(16, 16))
        self.bev = nn.Sequential(_conv(channels + 16, 32), _conv(32, 32), _conv(32, 32))
        self.head = nn.Conv2d(32, 1, 1)
        _prior_bias(self.head)
        self.channels = channels
        self.register_buffer(
            "lift",
            _lift_index(camera, 4, camera.height_px // 4, camera.width_px // 4),
            persistent=False,
        )

    def camera_bev(self, image: torch.Tensor) -> torch.Tensor:
        """Camera features lifted to BEV, (N, C, 32, 32)."""
        f = self.cam(image)
        depth = self.depth(f).softmax(dim=1)
        frustum = (self.feat(f)[:, :, None] * depth[:, None]).flatten(2)  # (N, C, D*h*w)
        valid = self.lift >= 0
        bev = frustum.new_zeros(f.shape[0], self.channels, GRID * GRID)
        bev = bev.index_add(2, self.lift[valid], frustum[:, :, valid])
        return bev.reshape(-1, self.channels, GRID, GRID)

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor) -> torch.Tensor:
        return self.logits(camera, lidar).sigmoid()

    def logits(self, camera: torch.Tensor, lidar: torch.Tensor) -> torch.Tensor:
        """Heatmap logits (N, 32, 32)."""
        x = torch.cat([self.camera_bev(camera), self.lidar(lidar)], dim=1)
        return self.head(self.bev(x))[:, 0]


class QueryFusion(nn.Module):
    """LiDAR proposals that sample camera features at their projected box; scores (N, 32, 32)."""

    grid: torch.Tensor

    def __init__(self, camera: PinholeCamera = CAMERA, proposals: int = 8) -> None:
        super().__init__()
        self.lidar = nn.Sequential(_conv(2, 16), _conv(16, 16), _conv(16, 16))
        self.objectness = nn.Conv2d(16, 1, 1)
        _prior_bias(self.objectness)
        self.cam = nn.Sequential(_conv(3, 16), _conv(16, 16))
        self.mlp = nn.Sequential(nn.Linear(16 * 3 + 1, 32), nn.ReLU(), nn.Linear(32, 1))
        self.k = proposals
        self.size = (camera.height_px, camera.width_px)
        self.register_buffer("grid", self._sample_grid(camera), persistent=False)

    @staticmethod
    def _sample_grid(camera: PinholeCamera) -> torch.Tensor:
        """(GRID*GRID, 16, 2) grid_sample points inside each cell's projected car-prior box."""
        length, width, height = CAR_PRIOR
        c = cell_centres().reshape(-1, 1, 2)
        sx = torch.tensor([-1, -1, -1, -1, 1, 1, 1, 1], dtype=torch.float64) * length / 2
        sy = torch.tensor([-1, -1, 1, 1, -1, -1, 1, 1], dtype=torch.float64) * width / 2
        sz = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1], dtype=torch.float64) * height
        corners = torch.stack([c[..., 0] + sx, c[..., 1] + sy, sz.expand(c.shape[0], 8)], dim=-1)
        uv, _ = project_points(camera.projection(), corners)
        lo, hi = uv.amin(dim=1), uv.amax(dim=1)  # (cells, 2)
        a = (torch.arange(4, dtype=torch.float64) + 0.5) / 4
        gu = lo[:, None, 0] + (hi - lo)[:, None, 0] * a[None]
        gv = lo[:, None, 1] + (hi - lo)[:, None, 1] * a[None]
        uu, vv = gu[:, None, :].expand(-1, 4, -1), gv[:, :, None].expand(-1, -1, 4)
        gx = (2 * uu + 1) / camera.width_px - 1
        gy = (2 * vv + 1) / camera.height_px - 1
        return torch.stack([gx, gy], dim=-1).reshape(-1, 16, 2).float()

    def proposals(self, lidar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """LiDAR features (N, 16, 32, 32), objectness logits (N, 32, 32), top-k cells (N, k)."""
        feat = self.lidar(lidar)
        obj = self.objectness(feat)[:, 0]
        with torch.no_grad():
            prob = obj.sigmoid()
            local = torch.where(
                prob >= F.max_pool2d(prob[:, None], 3, 1, 1)[:, 0], prob, torch.zeros_like(prob)
            )
            cells = local.flatten(1).topk(self.k, dim=1).indices
        return feat, obj, cells

    def query_logits(
        self, camera: torch.Tensor, feat: torch.Tensor, obj: torch.Tensor, cells: torch.Tensor
    ) -> torch.Tensor:
        """Car logits (N, Q) of the queries at BEV ``cells`` (N, Q)."""
        n, q = cells.shape
        img = self.cam(camera)
        grid = self.grid[cells]  # (N, Q, 16, 2)
        sampled = F.grid_sample(
            img, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        cam = torch.cat([sampled.mean(dim=3), sampled.amax(dim=3)], dim=1).permute(
            0, 2, 1
        )  # (N, Q, 32)
        lid = (
            feat.flatten(2).gather(2, cells[:, None].expand(-1, feat.shape[1], -1)).permute(0, 2, 1)
        )
        o = obj.flatten(1).gather(1, cells)[..., None]
        return self.mlp(torch.cat([cam, lid, o], dim=-1))[..., 0]

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor) -> torch.Tensor:
        feat, obj, cells = self.proposals(lidar)
        scores = self.query_logits(camera, feat, obj, cells).sigmoid()
        out = scores.new_zeros(cells.shape[0], GRID * GRID).scatter(1, cells, scores)
        return out.reshape(-1, GRID, GRID)


# ---------------------------------------------------------------------- training
def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet focal loss on heatmap logits against Gaussian targets (peak cells = 1)."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target >= 0.999
    pos_loss = -((1 - p) ** 2 * torch.log(p))[pos].sum()
    neg_loss = -((1 - target) ** 4 * p**2 * torch.log(1 - p))[~pos].sum()
    return (pos_loss + neg_loss) / pos.sum().clamp_min(1)


def _query_batch(
    scenes: list[Scene], predicted: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training queries (N, k + 8): predicted proposals plus jittered object cells; car labels."""
    centres = cell_centres().reshape(-1, 2).float()
    extra = torch.randint(GRID * GRID, (len(scenes), 8), generator=gen)
    for i, s in enumerate(scenes):
        for m, (x, y) in enumerate(s.boxes[:, :2].tolist()):
            jx, jy = (torch.randint(3, (2,), generator=gen) - 1).tolist()
            row = min(max(int(x) + jx, 0), GRID - 1)
            col = min(max(int(GRID / 2 - y) + jy, 0), GRID - 1)
            extra[i, m] = row * GRID + col
    cells = torch.cat([predicted, extra], dim=1)
    labels = torch.zeros(cells.shape, dtype=torch.float32)
    for i, s in enumerate(scenes):
        cars = s.cars.float()
        if len(cars):
            d = (centres[cells[i]][:, None] - cars[None]).norm(dim=-1).amin(dim=1)
            labels[i] = (d <= 1.5).float()
    return cells, labels


def _trainer(recipe: Mapping[str, Any]) -> Callable[[nn.Module], dict[str, float]]:
    def train(net: nn.Module) -> dict[str, float]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            x, scenes = make_scenes(recipe["n_train"], seed=recipe["data_seed"])
            gen = torch.Generator().manual_seed(recipe["seed"])
            cars = heatmap_targets(scenes, cars_only=True)
            objects = heatmap_targets(scenes, cars_only=False)
            opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
            n = len(scenes)
            for _ in range(recipe["epochs"]):
                order = torch.randperm(n, generator=gen)
                for start in range(0, n, recipe["batch_size"]):
                    idx = order[start : start + recipe["batch_size"]]
                    cam, lid = x["camera"][idx], x["lidar"][idx]
                    if isinstance(net, QueryFusion):
                        feat, obj, cells = net.proposals(lid)
                        q, labels = _query_batch([scenes[i] for i in idx.tolist()], cells, gen)
                        logits = net.query_logits(cam, feat, obj, q)
                        loss = focal_loss(obj, objects[idx]) + F.binary_cross_entropy_with_logits(
                            logits, labels
                        )
                    else:
                        assert isinstance(net, BevLiftFusion)
                        loss = focal_loss(net.logits(cam, lid), cars[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            return evaluate_detector(net, recipe["n_test"], recipe["test_seed"])
        finally:
            torch.set_num_threads(threads)

    return train


def evaluate_detector(net: nn.Module, n: int, seed: int) -> dict[str, float]:
    """Toy AP at 2 m, mean top score and target detection rate on ``n`` seeded test scenes."""
    x, scenes = make_scenes(n, seed=seed)
    view = DetectionView(net).eval()
    with torch.no_grad():
        maps = view.score_map(x)
        detected = view(x).argmax(dim=1) == 1
        top, _ = peaks(maps, 8)
    return {
        "clean_accuracy": float(detected.float().mean()),
        "toy_ap_2m": toy_ap(maps, scenes),
        "mean_top_score": float(top[:, 0].mean()),
    }


def _entry(name: str, description: str, build: Callable[[], nn.Module], **recipe: Any) -> None:
    recipe = {
        "arch": build.__name__,
        "seed": 0,
        "data_seed": 1000,
        "test_seed": 2000,
        "n_test": 200,
        "version": 1,
        **recipe,
    }

    def build_view() -> nn.Module:
        return DetectionView(build())

    def train_view(view: nn.Module) -> Mapping[str, Any]:
        assert isinstance(view, DetectionView)
        return _trainer(recipe)(view.detector)

    register_zoo_model(
        ZooEntry(
            name,
            description,
            build_view,
            train_view,
            recipe,
            {"bounds": (0.0, 1.0), "num_classes": 2},
            data="fusion-world",  # its own data: the held-out test scenes (seed 2000)
        )
    )


def bev_lift_fusion() -> BevLiftFusion:
    """The ``fusion-bev`` architecture."""
    return BevLiftFusion()


def query_fusion() -> QueryFusion:
    """The ``fusion-query`` architecture."""
    return QueryFusion()


_entry(
    "fusion-bev",
    "toy camera+LiDAR BEV-lift (LSS-lite) fusion car detector, 2-class 'target detected' view",
    bev_lift_fusion,
    n_train=800,
    epochs=6,
    lr=3e-3,
    batch_size=32,
)
_entry(
    "fusion-query",
    "toy camera+LiDAR object-query (TransFusion-lite) fusion car detector, 2-class view",
    query_fusion,
    n_train=800,
    epochs=6,
    lr=3e-3,
    batch_size=32,
)

"""Stage 2 of "Fusion is Not Enough" (Cheng et al., ICLR 2024, arXiv 2304.14614): a deployable
camera-only patch against a camera+LiDAR fusion detector; LiDAR is never touched.

Two placements, both warped into the image with the exact plane homography of the model's own
camera (:mod:`robustbench_lite.worlds.fusion_geometry`):

* ``strategy="scene"``: a rectangle on the ground plane (default 2 m wide x 2.5 m deep, centred
  7.3 m ahead, as in the paper's small BEVFusion-PKU patch); default loss log(mean detection
  score) (untargeted degradation of all detections).
* ``strategy="object"``: a rectangle (default 1 x 1 m) on the rear face of the target box, at
  ``inputs["target_xy"]`` with size ``inputs["target_lwh"]`` (a 4.1 x 1.9 x 1.55 m car prior if
  absent), centred at half the box height; default loss log(target score).

Optimisation: a texture (N or 1, 3, ``patch_px`` x ``patch_px``), random init in [0, 1], Adam
(lr 0.01, betas 0.5, 0.9), StepLR (every ``lr_step_every`` steps, gamma 0.97), texture clamped to
[0, 1]; each step averages the scores over ``eot_samples`` renderings with EOT: the patch
rescaled by a factor in ``scale_range`` (0.7-1.05) about its centre and colour jitter
(brightness 0.5, contrast 0.1, saturation 0.3). Loss per scene: log(mean over EOT of the score)
(+ optional TV). ``steps=0`` returns the random initial patch: the random-patch control with
the same area and placement, which every run also returns as
``metrics["random_patch_camera"]`` (the initial texture pasted at scale 1: the same images as
a ``steps=0`` run with the same generator), so reports show the control next to the attack.

Geometry: the model's own camera (``net.camera.projection()``), or per scene
``inputs["projection"]`` (N, 3, 4) when the data carries it (``kitti``: real calibrations
moved to a road frame with z = 0 on the road).

The returned camera image holds the patch at scale 1 without jitter; every other pixel is
bit-identical, so the changed area is the patch's footprint, which must be at most the threat's
eps (``patch:0.04@camera``); a larger footprint is an error naming both numbers.

Deviations from the paper: 300 steps (not 1000-1500) and 4 EOT renderings (not 5) on toy 48x96
images; one patch per scene unless ``universal=True`` (the paper optimises one patch over a
frame sequence); the patch is never occluded (toy boxes' rear faces stand >= 9.7 m ahead,
beyond the default ground patch's far edge at 8.55 m, and the target is the nearest car, so
nothing stands in front of its rear face in most scenes; a larger ground patch, e.g. 3 x 5 m at
8 m, can be drawn over the lowest pixel rows of a box standing closer than its far edge); the
texture has ``patch_px`` pixels per side instead of the paper's ``patch_fid`` pixels per metre;
scores come from the toy's top-8 score-map peaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.errors import DataError, ParameterError, UnsupportedThreatError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm
from robustbench_lite.worlds.fusion_geometry import (
    PlanarPatch,
    ground_patch,
    patch_coordinates,
    rear_face_patch,
)

from ._fusion import (
    camera_inputs,
    check_score_kind,
    colour_jitter,
    detection_net,
    detection_scores,
    log_mean,
)

STRATEGIES = ("object", "scene")
CAR_PRIOR_LWH = (4.1, 1.9, 1.55)


@register_attack("fusion_patch")
@dataclass(frozen=True)
class FusionPatch(Attack):
    """Scene- or object-oriented physical patch on the camera of a fusion detector.

    Args:
        strategy: ``"object"`` (rear face of the target box) or ``"scene"`` (ground plane).
        steps: Adam iterations (0: the random-patch control).
        lr: Adam learning rate on the texture in [0, 1].
        eot_samples: renderings averaged per step.
        scale_range: EOT rescaling factors of the patch size (min, max).
        brightness, contrast, saturation: EOT colour jitter amounts (factors 1 +- value).
        size_m: patch (width, height) in metres; None: (1, 1) for object, (2, 2.5) for scene
            (for scene: lateral width, depth along the road).
        ground_centre_m: (x, y) ego-frame centre of the ground patch, metres.
        patch_px: texture resolution (pixels per side).
        score: ``"target"`` or ``"mean"``; None: target for object, mean for scene.
        universal: one texture shared by all scenes of the batch.
        tv_weight: weight of the texture's total variation (paper: optional, 1e-4).
        lr_step_every, lr_gamma: StepLR schedule.

    Shape: x["camera"] (N, 3, H, W) in [0, 1]; other entries are returned unchanged.
    """

    supports = frozenset({(Norm.PATCH, Goal.UNTARGETED)})
    multimodal = True
    quick_params = {"steps": 60}
    strategy: str = "object"
    steps: int = 300
    lr: float = 0.01
    eot_samples: int = 4
    scale_range: tuple[float, float] = (0.7, 1.05)
    brightness: float = 0.5
    contrast: float = 0.1
    saturation: float = 0.3
    size_m: tuple[float, float] | None = None
    ground_centre_m: tuple[float, float] = (7.3, 0.0)
    patch_px: int = 24
    score: str | None = None
    universal: bool = False
    tv_weight: float = 0.0
    lr_step_every: int = 100
    lr_gamma: float = 0.97

    def run(
        self,
        model: Model,
        x: Inputs,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> AttackOutput:
        if self.strategy not in STRATEGIES:
            raise ParameterError(
                "strategy", f"{self.strategy!r}: choose one of {', '.join(STRATEGIES)}"
            )
        key, inputs = camera_inputs(x, threat, self.name)
        score_kind = self.score or ("target" if self.strategy == "object" else "mean")
        check_score_kind(score_kind, self.name)
        net = detection_net(model, self.name)
        cam = inputs[key].detach()
        n, _, h, w = cam.shape
        patches = [self._placement(inputs, i) for i in range(n)]
        proj = _projections(inputs, net, n)
        area = self._check_area(proj, patches, h, w, threat)
        scales = torch.linspace(self.scale_range[0], self.scale_range[1], 8).tolist()
        bank = [
            [patch_coordinates(p, pt.scaled(s), h, w) for s in scales]
            for p, pt in zip(proj, patches)
        ]
        tex = torch.rand(
            1 if self.universal else n, 3, self.patch_px, self.patch_px, generator=generator
        )
        tex = tex.to(cam)
        initial = tex.clone()
        tex.requires_grad_(True)
        opt = torch.optim.Adam([tex], lr=self.lr, betas=(0.5, 0.9))
        sched = torch.optim.lr_scheduler.StepLR(
            opt, step_size=max(1, self.lr_step_every), gamma=self.lr_gamma
        )
        for _ in range(self.steps):
            scores = []
            for _e in range(self.eot_samples):
                idx = torch.randint(len(scales), (n,), generator=generator).tolist()
                jittered = colour_jitter(
                    tex, generator, self.brightness, self.contrast, self.saturation
                )
                img = _paste(cam, jittered, [bank[i][j] for i, j in enumerate(idx)])
                scores.append(detection_scores(net, {**inputs, key: img}, score_kind))
            loss = log_mean(torch.stack(scores), dim=0).sum() + self.tv_weight * _tv(tex)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                tex.clamp_(0, 1)
        unit = scales.index(1.0) if 1.0 in scales else None
        coords = [
            bank[i][unit] if unit is not None else patch_coordinates(proj[i], patches[i], h, w)
            for i in range(n)
        ]
        with torch.no_grad():
            adv = _paste(cam, tex.detach().clamp(0, 1), coords)
            final = detection_scores(net, {**inputs, key: adv}, score_kind)
            control = _paste(cam, initial, coords)
        return AttackOutput(
            {**inputs, key: adv},
            metrics={
                "patch_area_fraction": area,
                "final_score": float(final.mean()),
                "score_kind": score_kind,
                "strategy": self.strategy,
                "random_patch_camera": control,
            },
        )

    def _placement(self, inputs: dict[str, torch.Tensor], i: int) -> PlanarPatch:
        """The world rectangle of scene ``i``'s patch (at scale 1)."""
        if self.strategy == "scene":
            return ground_patch(self.ground_centre_m, self.size_m or (2.0, 2.5))
        if "target_xy" not in inputs:
            raise DataError(
                f"attack {self.name}: strategy 'object' needs inputs['target_xy'] (N, 2), the target "
                "box centre in metres; or use strategy='scene'"
            )
        cx, cy = (float(v) for v in inputs["target_xy"][i])
        length, _, height = (
            (float(v) for v in inputs["target_lwh"][i]) if "target_lwh" in inputs else CAR_PRIOR_LWH
        )
        return rear_face_patch(cx - length / 2, cy, height / 2, self.size_m or (1.0, 1.0))

    def _check_area(
        self,
        proj: list[torch.Tensor],
        patches: list[PlanarPatch],
        h: int,
        w: int,
        threat: ThreatModel,
    ) -> float:
        """The largest patch footprint (area fraction at scale 1); an error if above eps."""
        areas = [
            float(patch_coordinates(p, pt, h, w)[1].double().mean()) for p, pt in zip(proj, patches)
        ]
        worst = max(areas)
        if worst > threat.eps + 1e-12:
            raise UnsupportedThreatError(
                f"attack {self.name}: the {self.strategy} patch of size {self.size_m or 'default'} m covers "
                f"{worst:.4f} of the image, above the threat's eps {threat.eps:g}; use a smaller "
                f"size_m or a larger eps (e.g. 'patch:{math.ceil(worst * 100) / 100:g}@camera')"
            )
        return sum(areas) / len(areas)


def _projections(inputs: dict[str, torch.Tensor], net: object, n: int) -> list[torch.Tensor]:
    """Per scene, the (3, 4) projection of world (road-frame) points to pixels: the data's own
    ``inputs["projection"]`` (N, 3, 4) when given, else the detector's camera."""
    if "projection" in inputs:
        p = inputs["projection"]
        if tuple(p.shape) != (n, 3, 4):
            raise DataError(
                f"inputs['projection'] has shape {tuple(p.shape)}; expected ({n}, 3, 4) "
                "matrices from road-frame points to pixels"
            )
        return [m.detach().cpu().double() for m in p]
    return [net.camera.projection()] * n  # type: ignore[attr-defined]


def _paste(
    cam: torch.Tensor, texture: torch.Tensor, coords: list[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Images (N, 3, H, W) with texture (N or 1, 3, h, w) sampled at per-scene coordinates."""
    grid = torch.stack([c[0] for c in coords]).to(cam)
    inside = torch.stack([c[1] for c in coords]).to(cam.device)
    tex = texture.expand(cam.shape[0], -1, -1, -1)
    sampled = torch.nn.functional.grid_sample(
        tex, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return torch.where(inside[:, None], sampled, cam)


def _tv(texture: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation of textures (B, 3, h, w), mean over pixels."""
    dx = (texture[..., :, 1:] - texture[..., :, :-1]).abs().mean()
    dy = (texture[..., 1:, :] - texture[..., :-1, :]).abs().mean()
    return dx + dy

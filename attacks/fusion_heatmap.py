"""Stage 1 of "Fusion is Not Enough" (Cheng et al., ICLR 2024, arXiv 2304.14614): the camera
sensitivity heatmap of a camera+LiDAR fusion detector.

On the camera image x (N, 3, H, W) in [0, 1], optimise a full-image perturbation P (random
init in [0, 1]) and coarse mask logits M0 (zeros, (N, 1, H/s, W/s) with s = ``mask_step``)::

    M  = clamp(upsample_nearest(tanh(M0) * 0.5 + 0.5), 0, 1)      (starts at 0.5)
    x' = (1 - M) * x + M * P
    L  = w_adv * log(mean score(x', LiDAR)) + w_mask * mean(M)

with Adam (betas 0.5, 0.9); P is clamped to [0, 1] after each step. Mask mass survives only
where perturbing pixels lowers the detection scores: the final M (N, H, W) is the sensitivity
heatmap, returned in ``metrics["heatmap"]`` with its concentration (share of mass in the top
10 % of pixels) in ``metrics["heatmap_top10_mass"]``.

The blended image changes almost every pixel, so use the full-area threat ``patch:1@camera``;
the base class re-checks that LiDAR is untouched and whether the target object is suppressed.

Deviations from the official code (``patch_type='whole'``): 300 steps instead of 5000 and
lr 0.05 (toy images of 48x96); the scores are the detector's top-8 score-map peaks >= 0.05
(the toy's post-processing) or, with ``score="target"``, the target's score; per-sample losses
are summed over the batch (each scene is its own optimisation, as with batch size 1). The
optional adaptive threshold (``adaptive_threshold``) sets w_adv = 0 per sample once its
score falls below the threshold, as ``adp_thres`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustbench_lite.core.attack import Attack, AttackOutput
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_attack
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Inputs, Norm

from ._fusion import (
    camera_inputs,
    check_score_kind,
    concentration,
    detection_net,
    detection_scores,
)


@register_attack("fusion_heatmap")
@dataclass(frozen=True)
class FusionHeatmap(Attack):
    """Sensitivity heatmap of a fusion detector's camera input (stage 1 of Cheng et al.).

    Args:
        steps: Adam iterations.
        lr: Adam learning rate (for P in [0, 1] and the mask logits).
        mask_step: the mask's downsampling factor (pixels per mask cell side).
        w_adv: weight of log(mean score).
        w_mask: weight of the mean mask value (larger: sparser heatmap).
        score: ``"mean"`` (mean detection score, the paper's untargeted loss) or ``"target"``.
        adaptive_threshold: drop the adversarial term of a sample once its score is below
            this value (None: never).

    Shape: x["camera"] (N, 3, H, W) in [0, 1], H and W divisible by ``mask_step``;
    metrics["heatmap"] (N, H, W) in [0, 1].
    """

    supports = frozenset({(Norm.PATCH, Goal.UNTARGETED)})
    multimodal = True
    quick_params = {"steps": 60}
    steps: int = 300
    lr: float = 0.05
    mask_step: int = 4
    w_adv: float = 1.0
    w_mask: float = 1.0
    score: str = "mean"
    adaptive_threshold: float | None = None

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
        key, inputs = camera_inputs(x, threat, self.name)
        check_score_kind(self.score, self.name)
        net = detection_net(model, self.name)
        cam = inputs[key].detach()
        n, _, h, w = cam.shape
        s = self.mask_step
        pert = torch.rand(cam.shape, generator=generator).to(cam).requires_grad_(True)
        logits = torch.zeros(n, 1, -(-h // s), -(-w // s), device=cam.device, requires_grad=True)
        opt = torch.optim.Adam([pert, logits], lr=self.lr, betas=(0.5, 0.9))
        w_adv = torch.full((n,), self.w_adv, device=cam.device)
        for _ in range(self.steps):
            mask = self._mask(logits, h, w)
            scores = detection_scores(
                net, {**inputs, key: (1 - mask) * cam + mask * pert}, self.score
            )
            if self.adaptive_threshold is not None:
                w_adv = torch.where(
                    scores.detach() < self.adaptive_threshold, torch.zeros_like(w_adv), w_adv
                )
            loss = (
                w_adv * torch.log(scores.clamp_min(1e-6))
                + self.w_mask * mask.flatten(1).mean(dim=1)
            ).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                pert.clamp_(0, 1)
        with torch.no_grad():
            mask = self._mask(logits, h, w)
            adv = ((1 - mask) * cam + mask * pert).clamp(0, 1)
            final = detection_scores(net, {**inputs, key: adv}, self.score)
        heat = mask[:, 0].detach()
        return AttackOutput(
            {**inputs, key: adv},
            metrics={
                "heatmap": heat,
                "heatmap_mean": float(heat.mean()),
                "heatmap_top10_mass": float(concentration(heat).mean()),
                "final_score": float(final.mean()),
            },
        )

    def _mask(self, logits: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """M (N, 1, H, W): nearest upsampling of tanh(M0) * 0.5 + 0.5, cropped, in [0, 1]."""
        up = F.interpolate(
            torch.tanh(logits) * 0.5 + 0.5, scale_factor=self.mask_step, mode="nearest"
        )
        return up[:, :, :h, :w].clamp(0, 1)

"""Shared parts of the camera-only attacks on fusion detectors (``fusion_heatmap``, ``fusion_patch``).

Inputs are mappings ``{"camera": (N, 3, H, W) in [0, 1], "lidar": ..., "target_xy": (N, 2), ...}``;
the threat's ``modality`` names the only entry that may change (the camera). The model must be
a detection view (e.g. :class:`robustbench_lite.worlds.fusion_world.DetectionView`, as the ``zoo:fusion-*``
models are): ``net.score_map(inputs) -> (N, G, G)`` scores in [0, 1] and ``net.camera``, the
:class:`~robustbench_lite.worlds.fusion_geometry.PinholeCamera` the detector projects with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from robustbench_lite.core.errors import DataError, ParameterError, UnsupportedThreatError
from robustbench_lite.core.model import Model
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Inputs
from robustbench_lite.worlds.fusion_world import mean_detection_score, target_score

SCORE_KINDS = ("target", "mean")


def camera_inputs(
    x: Inputs, threat: ThreatModel, attack: str
) -> tuple[str, dict[str, torch.Tensor]]:
    """The camera key and a plain dict copy of ``x``; clear errors for unusable inputs."""
    if isinstance(x, torch.Tensor):
        raise UnsupportedThreatError(
            f"attack {attack} needs mapping inputs such as {{'camera': (N, 3, H, W), 'lidar': ...}}, "
            f"not a tensor of shape {tuple(x.shape)}; pass the fusion model's input dict"
        )
    if not threat.modality:
        raise UnsupportedThreatError(
            f"attack {attack}: threat {threat.name} names no modality; write e.g. "
            f"'{threat.spec()}@camera' so that only the camera may change"
        )
    if threat.modality not in x:
        raise DataError(
            f"attack {attack}: the inputs have no {threat.modality!r} entry (threat {threat.name}); "
            f"they hold {sorted(x)}; name one of them after '@' or add the camera images"
        )
    cam = x[threat.modality]
    if cam.dim() != 4 or cam.shape[1] != 3 or not cam.is_floating_point():
        raise DataError(
            f"attack {attack}: inputs[{threat.modality!r}] has shape {tuple(cam.shape)} and dtype "
            f"{cam.dtype}; a camera entry must be float (N, 3, H, W) images in [0, 1]"
        )
    return threat.modality, dict(x)


def detection_net(model: Model, attack: str) -> Any:
    """The differentiable detection view of ``model`` (has ``score_map`` and ``camera``)."""
    net = model.differentiable.net
    if not (hasattr(net, "score_map") and hasattr(net, "camera")):
        raise UnsupportedThreatError(
            f"attack {attack} needs a detection model view with score_map() and camera "
            f"(e.g. zoo:fusion-bev or robustbench_lite.worlds.fusion_world.DetectionView); {model.name} "
            f"({type(net).__name__}) has none"
        )
    return net


def detection_scores(net: Any, inputs: Mapping[str, torch.Tensor], kind: str) -> torch.Tensor:
    """(N,) differentiable scores: the target's detection score or the mean detection score."""
    maps = net.score_map(inputs)
    if kind == "target":
        if "target_xy" not in inputs:
            raise DataError(
                "score='target' needs inputs['target_xy'] (N, 2); use score='mean' without it"
            )
        return target_score(maps, inputs["target_xy"])
    return mean_detection_score(maps)


def check_score_kind(kind: str, attack: str) -> None:
    """Raise :class:`ParameterError` unless ``kind`` is one of :data:`SCORE_KINDS`."""
    if kind not in SCORE_KINDS:
        raise ParameterError("score", f"{kind!r}: {attack} takes one of {', '.join(SCORE_KINDS)}")


def log_mean(scores: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(mean(scores)) along ``dim`` with a floor of 1e-6 (the paper's log_score_loss)."""
    return torch.log(scores.mean(dim=dim).clamp_min(1e-6))


def colour_jitter(
    texture: torch.Tensor,
    gen: torch.Generator,
    brightness: float,
    contrast: float,
    saturation: float,
) -> torch.Tensor:
    """Random brightness / contrast / saturation factors (1 +- value) per texture (B, 3, h, w)."""
    b = texture.shape[0]

    def factor(amount: float) -> torch.Tensor:
        return (1 + amount * (2 * torch.rand(b, 1, 1, 1, generator=gen) - 1)).to(texture)

    out = texture * factor(brightness)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * factor(contrast) + mean
    grey = out.mean(dim=1, keepdim=True)
    out = (out - grey) * factor(saturation) + grey
    return out.clamp(0, 1)


def concentration(mask: torch.Tensor, top_fraction: float = 0.1) -> torch.Tensor:
    """(N,) share of the mask's total mass held by its top ``top_fraction`` of pixels.

    1.0 = all mass on a few pixels (object-local), ``top_fraction`` = perfectly uniform.
    """
    flat = mask.flatten(1)
    k = max(1, math.ceil(top_fraction * flat.shape[1]))
    return flat.topk(k, dim=1).values.sum(dim=1) / flat.sum(dim=1).clamp_min(1e-12)

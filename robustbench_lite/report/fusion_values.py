"""Report values of camera patch attacks on fusion detectors (Cheng et al., ICLR 2024).

An attack on a fusion detector (a model whose network has ``score_map``, on mapping inputs with
``target_xy``, such as ``zoo:fusion-bev`` on ``fusion-world``) is scored the way
``benchmarks/fusion_patch.py`` scores it, from the real model's score maps (N, 32, 32) of three
inputs: the clean scenes (``before``), the attack's output (``after``) and, when the attack
returns one (``metrics["random_patch_camera"]``), the random-patch control of the same area
and placement (``control``).

:func:`cell_records` turns one cell into JSON-ready per-sample records; :func:`merge_records`
pools the records of all cells, in sample order, into the values:

* ``target_score_{before,after,control}``: mean best score within 2 m of the target;
* ``detection_rate_{before,after,control}``: share of targets scored >= 0.3;
* ``mean_score_{before,after,control}``: mean of the top-8 peaks >= 0.05;
* ``toy_ap_{before,after,control}``, ``toy_ap_drop`` (before - after) and
  ``toy_ap_drop_control``: AP at 2 m over all scenes (needs ``boxes`` in the inputs), pooled
  over cells before ranking, so sharding does not change it;
* ``heatmap_object_share``, ``heatmap_object_area``, ``heatmap_object_lift``: for attacks that
  return a stage-1 heatmap (``metrics["heatmap"]``, N x H x W), the share of its mass on object
  pixels (dilated by 1 px), the object pixels' share of the image, and their ratio (per scene,
  then the mean; 1 = no preference for objects). Needs ``boxes`` and the model's pinhole camera.

The first cell also keeps up to :data:`EXAMPLES` scenes (camera before and after, heatmap) as
base64 bytes for the HTML report (:func:`example_arrays`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robustbench_lite.core.types import Inputs

#: Attack metrics this module consumes (large tensors, kept out of the JSON detail).
TENSOR_METRICS = ("heatmap", "random_patch_camera")
#: Scenes of the first cell kept as images for the HTML report.
EXAMPLES = 3
STATES = ("before", "after", "control")
DETECT_THRESHOLD = 0.3


def is_fusion(model: Any, x: Inputs) -> bool:
    """Whether ``x`` and ``model`` are a fusion detector's inputs and detection view."""
    return (
        isinstance(x, Mapping)
        and "camera" in x
        and "target_xy" in x
        and callable(getattr(model.net, "score_map", None))
    )


def cell_records(
    model: Any,
    x: Mapping[str, torch.Tensor],
    x_adv: Mapping[str, torch.Tensor],
    metrics: Mapping[str, Any],
    modality: str | None,
) -> dict[str, Any]:
    """Per-sample fusion records of one cell (see the module docstring); JSON-ready."""
    from robustbench_lite.worlds.fusion_world import (
        detection_records,
        mean_detection_score,
        target_score,
    )

    key = modality or "camera"
    states: dict[str, Mapping[str, torch.Tensor]] = {"before": x, "after": x_adv}
    control = metrics.get("random_patch_camera")
    if isinstance(control, torch.Tensor):
        states["control"] = {**x, key: control.to(x[key])}
    scenes = _scenes(x)
    out: dict[str, Any] = {}
    with torch.no_grad():
        for state, inputs in states.items():
            maps = model.net.score_map(inputs)
            tgt = target_score(maps, inputs["target_xy"])
            out[state] = {
                "target_score": tgt.tolist(),
                "mean_score": mean_detection_score(maps).tolist(),
            }
            if scenes is not None:
                out[state]["detections"] = [
                    [[s, hit] for s, hit in recs] for recs in detection_records(maps, scenes)
                ]
    if scenes is not None:
        out["n_cars"] = [len(s.cars) for s in scenes]
    heat = metrics.get("heatmap")
    camera = getattr(model.net, "camera", None)
    if isinstance(heat, torch.Tensor) and scenes is not None and camera is not None:
        from robustbench_lite.worlds.fusion_world import object_pixels

        objects = torch.stack([object_pixels(s, camera) for s in scenes]).float()
        objects = F.max_pool2d(objects[:, None], 3, stride=1, padding=1)[:, 0] > 0
        h = heat.detach().cpu().float()
        if h.shape == objects.shape:
            on_obj = (h * objects).flatten(1).sum(1) / h.flatten(1).sum(1).clamp_min(1e-12)
            out["heatmap_object_share"] = on_obj.tolist()
            out["heatmap_object_area"] = objects.float().flatten(1).mean(1).tolist()
    return out


def merge_records(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fusion values of all cells' records (in sample order)."""
    from robustbench_lite.worlds.fusion_world import average_precision

    values: dict[str, Any] = {}
    if not records:
        return values
    n_cars = [c for r in records for c in r.get("n_cars", [])]
    has_boxes = all("n_cars" in r for r in records)
    for state in STATES:
        if not all(state in r for r in records):
            continue
        tgt = [v for r in records for v in r[state]["target_score"]]
        mean = [v for r in records for v in r[state]["mean_score"]]
        values[f"target_score_{state}"] = _mean(tgt)
        values[f"detection_rate_{state}"] = _mean([float(v >= DETECT_THRESHOLD) for v in tgt])
        values[f"mean_score_{state}"] = _mean(mean)
        if has_boxes:
            pooled = [
                (float(s), bool(h)) for r in records for d in r[state]["detections"] for s, h in d
            ]
            values[f"toy_ap_{state}"] = average_precision(pooled, sum(n_cars))
    if "toy_ap_after" in values:
        values["toy_ap_drop"] = values["toy_ap_before"] - values["toy_ap_after"]
    if "toy_ap_control" in values:
        values["toy_ap_drop_control"] = values["toy_ap_before"] - values["toy_ap_control"]
    if all("heatmap_object_share" in r for r in records):
        share = [v for r in records for v in r["heatmap_object_share"]]
        area = [v for r in records for v in r["heatmap_object_area"]]
        values["heatmap_object_share"] = _mean(share)
        values["heatmap_object_area"] = _mean(area)
        values["heatmap_object_lift"] = _mean([s / a for s, a in zip(share, area) if a > 0])
    return values


def example_arrays(
    x: Mapping[str, torch.Tensor],
    x_adv: Mapping[str, torch.Tensor],
    metrics: Mapping[str, Any],
    modality: str | None,
    records: Mapping[str, Any],
    k: int = EXAMPLES,
) -> dict[str, Any]:
    """Up to ``k`` scenes for the HTML report: cameras before/after (and the heatmap) as base64
    uint8 bytes with their shapes (compact in the JSON report), and the target's score before
    and after (from :func:`cell_records`)."""
    key = modality or "camera"
    k = min(k, int(x[key].shape[0]))
    out: dict[str, Any] = {
        "k": k,
        "target_score": [records[s]["target_score"][:k] for s in ("before", "after")],
    }
    arrays = {"camera": x[key][:k], "camera_adv": x_adv[key][:k]}
    heat = metrics.get("heatmap")
    if isinstance(heat, torch.Tensor):
        arrays["heatmap"] = heat[:k]
    for name, t in arrays.items():
        u8 = (t.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        out[name] = {"shape": list(u8.shape), "u8": base64.b64encode(u8.tobytes()).decode()}
    return out


def decode_example(entry: Mapping[str, Any]) -> np.ndarray:
    """An array of :func:`example_arrays` back as float32 in [0, 1]."""
    raw = np.frombuffer(base64.b64decode(entry["u8"]), dtype=np.uint8)
    return raw.reshape(entry["shape"]).astype(np.float32) / 255.0


def _scenes(x: Mapping[str, torch.Tensor]) -> list[Any] | None:
    if "boxes" not in x:
        return None
    from robustbench_lite.datasets.fusion_world import scenes_of

    return scenes_of(x["boxes"])


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")

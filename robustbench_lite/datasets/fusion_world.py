"""``fusion-world``: seeded procedural driving scenes as mapping inputs for fusion detectors.

``rbl.load_data("fusion-world", n=16, seed=7)`` gives exactly the scenes of
:func:`robustbench_lite.worlds.fusion_world.make_scenes` ``(n, seed)`` (the scene count is part
of the generation: the LiDAR noise is drawn after all scenes, so the first 4 of 16 scenes are
not the 4 scenes of ``n=4``). Inputs, a mapping of tensors with N scenes each:

* ``camera`` (N, 3, 48, 96) in [0, 1] and ``lidar`` (N, 2, 32, 32): what the detector sees;
* ``target_xy`` (N, 2) and ``target_lwh`` (N, 3): the nearest car's centre and box size,
  metres (where an object-oriented patch goes; the ``DetectionView`` reports this object);
* ``boxes`` (N, 7, 6): every object's (x, y, length, width, height, is_car), metres, padded
  with rows whose is_car is -1 (:func:`scenes_of` turns them back into scenes, for the toy AP
  and the heatmap's object share).

Labels y (N,) are all 1: "the target car is detected", the class a ``zoo:fusion-*`` model
predicts for a clean scene it gets right (clean accuracy = target detection rate). Options:
``seed`` (default by split: 1000 train, 2000 test, the zoo models' own) and ``n`` (scenes,
default 16).
"""

from __future__ import annotations

import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.datasets import Domain, check_split
from robustbench_lite.worlds.fusion_world import Scene, make_scenes

#: Camera images in [0, 1]; name a patch threat with --threat (e.g. patch:0.04@camera).
DOMAIN = Domain(bounds=(0.0, 1.0))

#: The zoo fusion models were trained on seed 1000 and tested on seed 2000.
SEEDS = {"train": 1000, "test": 2000}
#: Rows of ``boxes`` per scene: at most 4 cars and 3 decoys.
MAX_BOXES = 7
#: Scenes generated when no ``n`` is given.
DEFAULT_N = 16


def load(
    split: str = "test", n: int = DEFAULT_N, seed: int | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``n`` seeded scenes: the inputs mapping (see the module docstring) and labels (N,) of 1."""
    check_split(split)
    if isinstance(seed, bool) or not isinstance(seed, (int, type(None))):
        raise DataError(f"fusion-world seed={seed!r}: pass an integer, e.g. seed: 7")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"fusion-world n={n!r}: pass a positive number of scenes, e.g. n: 16")
    x, scenes = make_scenes(n, seed=SEEDS[split] if seed is None else seed)
    x["boxes"] = pack_boxes(scenes)
    return x, torch.ones(n, dtype=torch.long)


def pack_boxes(scenes: list[Scene], rows: int = MAX_BOXES) -> torch.Tensor:
    """(N, rows, 6) float32 boxes of ``scenes``, padded with rows (0, 0, 0, 0, 0, -1)."""
    out = torch.zeros(len(scenes), rows, 6)
    out[..., 5] = -1.0
    for i, s in enumerate(scenes):
        if len(s.boxes) > rows:
            raise DataError(f"scene {i} has {len(s.boxes)} boxes, more than {rows} rows")
        out[i, : len(s.boxes)] = s.boxes.float()
    return out


def scenes_of(boxes: torch.Tensor) -> list[Scene]:
    """Scenes (ground truth only) from packed ``boxes`` (N, M, 6); padding rows dropped."""
    if boxes.dim() != 3 or boxes.shape[-1] != 6:
        raise DataError(
            f"boxes of shape {tuple(boxes.shape)}: expected (N, M, 6) rows of "
            "(x, y, length, width, height, is_car), padded with is_car = -1"
        )
    b = boxes.detach().cpu().double()
    return [Scene(b[i][b[i, :, 5] >= 0], (0.0, 0.0, 0.0)) for i in range(len(b))]

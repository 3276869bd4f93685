"""AT&T / ORL faces from the data folder (``$RBL_DATA_DIR/att_faces_orl``): 40 identities x 10.

x: (N, 1, 112, 92) float32 in [0, 1]; y: (N,) int64 identity 0..39 (folder s1 -> 0).
Fixed split: per identity, images are shuffled with seed 0 and the first 7 go to train,
the last 3 to test (280 / 120). ``size=(h, w)`` resizes with area averaging (e.g. (56, 46)).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.datasets import Domain, data_folder

#: Grey levels in [0, 1], fed as they are; ``evaluate`` measures top-5 l2 1.0 by default.
DOMAIN = Domain(bounds=(0.0, 1.0), default_threats=("l2:1.0:top_k:5",))

FOLDER = "att_faces_orl"
N_IDENTITIES, N_IMAGES, HEIGHT, WIDTH = 40, 10, 112, 92
TRAIN_PER_IDENTITY = 7
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _all_faces() -> tuple[np.ndarray, np.ndarray]:
    root = data_folder(FOLDER)
    images = np.empty((N_IDENTITIES * N_IMAGES, HEIGHT, WIDTH), dtype=np.uint8)
    for s in range(N_IDENTITIES):
        for i in range(N_IMAGES):
            path = root / f"s{s + 1}" / f"{i + 1}.pgm"
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise DataError(
                    f"{path}: cannot read ORL image ({exc}); see {FOLDER}/README.md"
                ) from None
            if len(raw) < HEIGHT * WIDTH:
                raise DataError(f"{path}: {len(raw)} bytes, too short for a {WIDTH}x{HEIGHT} PGM")
            images[s * N_IMAGES + i] = np.frombuffer(raw[-HEIGHT * WIDTH :], np.uint8).reshape(
                HEIGHT, WIDTH
            )
    return images, np.repeat(np.arange(N_IDENTITIES), N_IMAGES)


def split_indices(split: str) -> np.ndarray:
    """Indices into the 400 images (identity-major order) that form ``split``."""
    rng = np.random.default_rng(SPLIT_SEED)
    chosen = []
    for s in range(N_IDENTITIES):
        order = rng.permutation(N_IMAGES) + s * N_IMAGES
        chosen.append(
            order[:TRAIN_PER_IDENTITY] if split == "train" else order[TRAIN_PER_IDENTITY:]
        )
    return np.concatenate(chosen)


def load(
    split: str = "test", size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ORL ``split``, optionally resized to ``size`` = (height, width)."""
    images, labels = _all_faces()
    idx = split_indices(split)
    x = torch.from_numpy(images[idx].astype(np.float32) / 255.0)[:, None]
    if size is not None:
        x = torch.nn.functional.adaptive_avg_pool2d(x, (int(size[0]), int(size[1])))
    return x, torch.from_numpy(labels[idx].astype(np.int64))

"""scikit-learn's ``load_digits``: 1,797 real 8x8 handwritten digits, always available.

x: (N, 1, 8, 8) float32 in [0, 1] (pixel / 16); y: (N,) int64 in 0..9.
Fixed stratified split (seed 0): 1,257 train, 540 test.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from robustbench_lite.datasets import Domain

#: Pixels in [0, 1], fed as they are; ``evaluate`` measures linf 0.1 and l2 1.0 by default.
DOMAIN = Domain(bounds=(0.0, 1.0), default_threats=("linf:0.1", "l2:1"))
TEST_FRACTION = 0.3
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    return x_tr, y_tr, x_te, y_te


def load(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """The digits ``split`` as tensors (copies; callers may modify them)."""
    x_tr, y_tr, x_te, y_te = _arrays()
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())

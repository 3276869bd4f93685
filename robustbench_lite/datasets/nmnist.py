"""N-MNIST small subset (slayerPytorch "NMNISTsmall"): real event-camera digits as binary frames.

Reads ``$RBL_DATA_DIR/nmnist_small_slayer`` (see its README): 300 training recordings
(``train300.txt``) and 100 test recordings (``test100.txt``), each a ``.bs2`` file of 5-byte
big-endian events: x (byte 0, 0..33), y (byte 1, 0..33), polarity (bit 7 of byte 2, 1 = ON) and
a 23-bit timestamp in microseconds (rest of bytes 2..4).

Encoding (frames, as in the PDSG/SDA paper's binary DVS protocol):

* time: events with ``t < window_us`` go to bin ``floor(t * time_bins / window_us)``; later
  events are dropped (recordings last about 306-308 ms, so the default 310 ms keeps them all);
* space: pixel (x, y) goes to ``(y // downsample, x // downsample)`` of a
  ``ceil(34 / downsample)`` square frame;
* channel 0 = OFF (polarity 0), channel 1 = ON (polarity 1);
* binarised: a frame entry is 1 when at least one event fell in it (count >= 1), else 0.

x: (N, time_bins, 2, H, W) float32 in {0, 1}; y: (N,) int64 digits.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.datasets import Domain, data_folder

#: Binary event frames in {0, 1}; ``evaluate`` measures l0 200 (flipped events) by default.
DOMAIN = Domain(bounds=(0.0, 1.0), default_threats=("l0:200",))

FOLDER = "nmnist_small_slayer"
LISTS = {"train": "train300.txt", "test": "test100.txt"}
SENSOR = 34


def read_events(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, polarity, t_us) int64 arrays of one ``.bs2`` / N-MNIST ``.bin`` file."""
    raw = np.fromfile(path, np.uint8)
    if raw.size % 5:
        raise DataError(f"{path}: {raw.size} bytes is not a multiple of 5; the file is truncated")
    a = raw.reshape(-1, 5).astype(np.int64)
    t = ((a[:, 2] & 0x7F) << 16) | (a[:, 3] << 8) | a[:, 4]
    return a[:, 0], a[:, 1], a[:, 2] >> 7, t


def read_labels(path: Path) -> np.ndarray:
    """(N, 2) int array of (file id, digit) rows of a label list (one header line)."""
    return np.loadtxt(path, skiprows=1, dtype=np.int64, ndmin=2)


def frames(
    events: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    time_bins: int,
    downsample: int,
    window_us: int,
) -> np.ndarray:
    """Binary frames (time_bins, 2, H, W) float32 of one recording (see the module docstring)."""
    x, y, p, t = events
    side = -(-SENSOR // downsample)
    keep = t < window_us
    b = (t[keep] * time_bins) // window_us
    out = np.zeros((time_bins, 2, side, side), np.float32)
    out[b, p[keep], y[keep] // downsample, x[keep] // downsample] = 1.0
    return out


@lru_cache(maxsize=8)
def _load(
    split: str, time_bins: int, downsample: int, window_us: int
) -> tuple[np.ndarray, np.ndarray]:
    folder = data_folder(FOLDER)
    labels = read_labels(folder / LISTS[split])
    xs = [
        frames(
            read_events(folder / f"{sid}.bs2"),
            time_bins=time_bins,
            downsample=downsample,
            window_us=window_us,
        )
        for sid in labels[:, 0]
    ]
    return np.stack(xs), labels[:, 1].copy()


def load(
    split: str = "test", time_bins: int = 8, downsample: int = 2, window_us: int = 310_000
) -> tuple[torch.Tensor, torch.Tensor]:
    """The N-MNIST subset ``split`` as binary frames; see the module docstring for the encoding."""
    for name, value in (
        ("time_bins", time_bins),
        ("downsample", downsample),
        ("window_us", window_us),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"nmnist {name}={value!r} must be a positive integer")
    x, y = _load(split, time_bins, downsample, window_us)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())

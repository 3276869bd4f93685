"""The N-MNIST subset loader: event parsing as the data README documents, binary frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import data_dir_or_skip

import robustbench_lite as rbl
from robustbench_lite.core.errors import DataFolderMissing
from robustbench_lite.datasets import nmnist


@pytest.mark.data
def test_events_parse_as_documented() -> None:
    folder = data_dir_or_skip("nmnist_small_slayer")
    x, y, p, t = nmnist.read_events(folder / "1.bs2")
    assert len(x) == (folder / "1.bs2").stat().st_size // 5 == 4681
    assert x.min() >= 0 and x.max() <= 33 and y.min() >= 0 and y.max() <= 33
    assert set(np.unique(p)) == {0, 1}
    assert bool((np.diff(t) >= 0).all()) and 250_000 < t.max() < 310_000  # ~300 ms, sorted
    raw = np.fromfile(folder / "1.bs2", np.uint8)[:5].astype(np.int64)  # the first event by hand
    assert (x[0], y[0], p[0]) == (raw[0], raw[1], raw[2] >> 7)
    assert t[0] == (raw[2] & 0x7F) * 65536 + raw[3] * 256 + raw[4]


@pytest.mark.data
def test_labels_and_class_counts_match_the_readme() -> None:
    data_dir_or_skip("nmnist_small_slayer")
    x_tr, y_tr = rbl.load_data("nmnist", split="train")
    x_te, y_te = rbl.load_data("nmnist", split="test")
    assert y_tr[:5].tolist() == [5, 0, 4, 1, 9] and y_te[:3].tolist() == [7, 2, 1]
    assert y_tr.bincount().tolist() == [34, 39, 28, 34, 32, 23, 29, 29, 21, 31]
    assert y_te.bincount().tolist() == [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]
    assert x_tr.shape == (300, 8, 2, 17, 17) and x_te.shape == (100, 8, 2, 17, 17)
    assert x_tr.dtype == torch.float32 and bool(((x_tr == 0) | (x_tr == 1)).all())


@pytest.mark.data
def test_frames_are_binarised_event_counts() -> None:
    folder = data_dir_or_skip("nmnist_small_slayer")
    ex, ey, ep, et = nmnist.read_events(folder / "2.bs2")
    x, _ = rbl.load_data("nmnist", split="train", n=2, time_bins=10, downsample=1)
    cells = {(int(b), int(q), int(r), int(c)) for b, q, r, c in zip(et * 10 // 310_000, ep, ey, ex)}
    assert x.shape == (2, 10, 2, 34, 34)
    assert int(x[1].sum()) == len(cells)
    b, q, r, c = next(iter(cells))
    assert x[1, b, q, r, c] == 1


def test_missing_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RBL_DATA_DIR", str(tmp_path))
    nmnist._load.cache_clear()
    with pytest.raises(DataFolderMissing, match="nmnist_small_slayer"):
        rbl.load_data("nmnist")

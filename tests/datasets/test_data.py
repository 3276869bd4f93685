"""rbl.load_data: the digits split, npz archives, n, and bad data specs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import data_dir_or_skip

import robustbench_lite as rbl
from robustbench_lite.datasets import list_datasets


def test_digits_split_is_fixed_stratified_and_complete() -> None:
    from sklearn.datasets import load_digits

    x_tr, y_tr = rbl.load_data("digits", split="train")
    x_te, y_te = rbl.load_data("digits", split="test")
    assert x_tr.shape == (1257, 1, 8, 8) and x_te.shape == (540, 1, 8, 8)
    assert x_te.dtype == torch.float32 and y_te.dtype == torch.int64
    assert float(x_te.min()) == 0.0 and float(x_te.max()) == 1.0
    test_counts, all_counts = Counter(y_te.tolist()), Counter(y_tr.tolist() + y_te.tolist())
    assert all(abs(test_counts[c] - 0.3 * all_counts[c]) <= 1 for c in range(10))  # stratified
    # the two splits are a partition of scikit-learn's 1,797 digits
    full = np.sort((load_digits().data / 16.0).astype(np.float32), axis=0)
    both = np.sort(torch.cat([x_tr, x_te]).reshape(-1, 64).numpy(), axis=0)
    assert np.array_equal(full, both)
    again_x, again_y = rbl.load_data("digits", split="test")
    assert torch.equal(again_x, x_te) and torch.equal(again_y, y_te)  # fixed split
    again_x[0] = 5.0  # callers get copies
    assert float(rbl.load_data("digits", n=1)[0].max()) <= 1.0


def test_n_takes_the_first_samples() -> None:
    x, y = rbl.load_data("digits", n=7)
    full_x, full_y = rbl.load_data("digits")
    assert torch.equal(x, full_x[:7]) and torch.equal(y, full_y[:7])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n": 541}, "n=541 is larger than digits (540 samples); use n <= 540"),
        ({"n": 0}, "n=0 must be a positive integer"),
        ({"n": True}, "must be a positive integer"),
        ({"split": "val"}, "split 'val': choose one of train, test"),
        ({"sise": 3}, "unknown option 'sise'"),
    ],
)
def test_bad_digits_requests(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(rbl.DataError) as info:
        rbl.load_data("digits", **kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_unknown_dataset_suggests() -> None:
    with pytest.raises(rbl.DataError, match="unknown dataset 'digit'; did you mean digits"):
        rbl.load_data("digit")
    assert "digits" in list_datasets()


def test_npz_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    x = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float64)
    np.savez(path, x=x, y=np.arange(6) % 3)
    xt, yt = rbl.load_data(f"npz:{path}")
    assert xt.dtype == torch.float32 and yt.dtype == torch.int64
    assert torch.allclose(xt, torch.from_numpy(x).float()) and yt.tolist() == [0, 1, 2, 0, 1, 2]
    assert rbl.load_data(f"npz:{path}", n=2)[0].shape == (2, 1, 8, 8)
    tokens = tmp_path / "t.npz"
    np.savez(tokens, x=np.arange(12).reshape(3, 4), y=np.zeros(3, dtype=np.int32))
    assert rbl.load_data(f"npz:{tokens}")[0].dtype == torch.int64  # token ids stay integers


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"x": np.zeros((3, 2))}, "lacks array(s) y"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(3)}, "labels must be integers"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(4, dtype=int)}, "expected (3,) labels"),
        (
            {"x": np.array([{"a": 1}] * 3, dtype=object), "y": np.zeros(3, dtype=int)},
            "not a readable .npz",
        ),
    ],
)
def test_bad_npz(tmp_path: Path, arrays: dict[str, np.ndarray], needle: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(rbl.DataError) as info:
        rbl.load_data(f"npz:{path}")
    assert needle in str(info.value)


def test_missing_and_corrupt_npz(tmp_path: Path) -> None:
    with pytest.raises(rbl.DataError, match="does not exist"):
        rbl.load_data(f"npz:{tmp_path / 'none.npz'}")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x00not a zip" * 20)
    with pytest.raises(rbl.DataError, match="not a readable .npz archive"):
        rbl.load_data(f"npz:{junk}")


@pytest.mark.data
def test_orl_faces_from_the_data_folder() -> None:
    data_dir_or_skip("att_faces_orl")
    x, y = rbl.load_data("orl", split="test")
    assert x.shape == (120, 1, 112, 92) and sorted(Counter(y.tolist()).values()) == [3] * 40
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    small = rbl.load_data("orl", split="train", size=(56, 46))[0]
    assert small.shape == (280, 1, 56, 46)

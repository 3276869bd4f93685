"""``npz:PATH``: a NumPy archive with ``y`` (N,) integer labels and either one array ``x``
(N, ...) or named arrays for a multimodal model, each (N, ...): ``camera`` (N, 3, H, W) in
[0, 1], ``lidar``, ``target_xy`` (N, 2), ... (a user's own scenes, shaped as
``rbl.load_data("fusion-world")`` gives them). Named arrays load as a mapping of tensors
(:data:`robustbench_lite.core.types.Inputs`) in the archive's order; save them with
``np.savez(path, y=labels, camera=images, lidar=bev, target_xy=centres)``."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.core.io import not_a_file, zip_inflated_bytes
from robustbench_lite.core.types import Inputs

#: Environment variable that raises the cap on an archive's inflated size (bytes).
MAX_BYTES_ENV = "RBL_MAX_DATA_BYTES"
DEFAULT_MAX_BYTES = 4 << 30


def load_npz(path: Path) -> tuple[Inputs, torch.Tensor]:
    """Read ``x`` (or the named arrays) and ``y`` from ``path`` without unpickling
    (``allow_pickle=False``).

    The archive's declared inflated size is checked against ``$RBL_MAX_DATA_BYTES`` (default
    4 GiB) before any array is read, so a small file cannot inflate into all of memory.
    """
    problem = not_a_file(path)
    if problem:
        raise DataError(f"data file {path} {problem}; pass npz:PATH to an existing .npz file")
    _check_inflated_size(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            named = [k for k in archive.files if k not in ("x", "y")]
            missing = [k for k in ("x", "y") if k not in archive.files]
            if "x" in missing and named and "y" in archive.files:
                missing = []  # a multimodal archive: named arrays instead of x
            if missing:
                raise DataError(
                    f"{path} lacks array(s) {', '.join(missing)}; it has {', '.join(archive.files) or 'none'}. "
                    "Save it with np.savez(path, x=inputs, y=labels) (multimodal: "
                    "np.savez(path, y=labels, camera=images, lidar=bev, ...))"
                )
            y = archive["y"]
            arrays = {"x": archive["x"]} if "x" in archive.files else {k: archive[k] for k in named}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise DataError(
            f"{path} is not a readable .npz archive ({exc}); save it with np.savez"
        ) from None
    if y.ndim != 1:
        raise DataError(f"{path}: y has shape {y.shape}; expected (N,) integer labels")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y has dtype {y.dtype}; labels must be integers")
    tensors = {k: _tensor(path, k, v, len(y)) for k, v in arrays.items()}
    labels = torch.from_numpy(y.astype(np.int64))
    return (tensors["x"] if "x" in tensors else tensors), labels


def _tensor(path: Path, key: str, array: np.ndarray, n: int) -> torch.Tensor:
    """Array ``key`` as a tensor (floats as float32); an error unless it has ``n`` samples."""
    if array.ndim < 1 or len(array) != n:
        raise DataError(
            f"{path}: y has shape ({n},); expected ({len(array) if array.ndim else 0},) labels "
            f"matching {key} of shape {array.shape} (every array needs one row per sample)"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{path}: {key} has dtype {array.dtype}; save numeric arrays")
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.float() if t.is_floating_point() else t


def load(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Not used directly: write the spec as ``npz:PATH``."""
    raise DataError("the npz source needs a path: write npz:PATH")


def _check_inflated_size(path: Path) -> None:
    cap = int(os.environ.get(MAX_BYTES_ENV, "0") or 0) or DEFAULT_MAX_BYTES
    declared = zip_inflated_bytes(path)
    if declared is not None and declared > cap:  # None: not a zip, np.load reports it below
        raise DataError(
            f"{path} declares {declared:,} bytes once inflated, more than the cap of {cap:,}; "
            f"if the data is genuine, raise the cap with {MAX_BYTES_ENV}={declared}"
        )

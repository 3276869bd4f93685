"""``npz:PATH``: a NumPy archive with arrays ``x`` (N, ...) and ``y`` (N,) of integer labels."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from robustbench_lite.core.errors import DataError
from robustbench_lite.core.io import not_a_file, zip_inflated_bytes

#: Environment variable that raises the cap on an archive's inflated size (bytes).
MAX_BYTES_ENV = "RBL_MAX_DATA_BYTES"
DEFAULT_MAX_BYTES = 4 << 30


def load_npz(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``x`` and ``y`` from ``path`` without unpickling (``allow_pickle=False``).

    The archive's declared inflated size is checked against ``$RBL_MAX_DATA_BYTES`` (default
    4 GiB) before any array is read, so a small file cannot inflate into all of memory.
    """
    problem = not_a_file(path)
    if problem:
        raise DataError(f"data file {path} {problem}; pass npz:PATH to an existing .npz file")
    _check_inflated_size(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise DataError(
                    f"{path} lacks array(s) {', '.join(missing)}; it has {', '.join(archive.files) or 'none'}. "
                    "Save it with np.savez(path, x=inputs, y=labels)"
                )
            x, y = archive["x"], archive["y"]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise DataError(
            f"{path} is not a readable .npz archive ({exc}); save it with np.savez"
        ) from None
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: y has shape {y.shape}; expected ({len(x)},) labels matching x")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y has dtype {y.dtype}; labels must be integers")
    xt = torch.from_numpy(np.ascontiguousarray(x))
    if xt.is_floating_point():
        xt = xt.float()
    return xt, torch.from_numpy(y.astype(np.int64))


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

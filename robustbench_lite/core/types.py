"""Small shared types: the input alias and the enums every component speaks."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

import torch

#: A model input: one tensor ``(N, ...)``, or a mapping of named tensors for multimodal
#: models (for example ``{"rgb": (N, 3, H, W), "lidar": (N, P, 4)}``).
Inputs = torch.Tensor | Mapping[str, torch.Tensor]

#: Input bounds ``(lo, hi)`` in the units the attacks see (after no normalization).
Bounds = tuple[float, float]


class Norm(str, Enum):
    """The geometry of a threat set."""

    LINF = "linf"
    L2 = "l2"
    L1 = "l1"
    L0 = "l0"
    PATCH = "patch"
    NONE = "none"


class Goal(str, Enum):
    """What counts as a successful attack."""

    UNTARGETED = "untargeted"
    TARGETED = "targeted"
    TOP_K = "top_k"


class Status(str, Enum):
    """A verifier's verdict for one sample or property."""

    VERIFIED = "verified"
    FALSIFIED = "falsified"
    UNKNOWN = "unknown"


def batch_size(x: Inputs) -> int:
    """Number of samples in ``x`` (the leading dimension of the tensor or of every entry)."""
    if isinstance(x, torch.Tensor):
        return int(x.shape[0])
    sizes = {int(v.shape[0]) for v in x.values()}
    if len(sizes) != 1:
        from robustbench_lite.core.errors import DataError

        raise DataError(f"input entries disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def index_inputs(x: Inputs, idx: torch.Tensor | slice) -> Inputs:
    """Select samples ``idx`` from a tensor or from every entry of a mapping."""
    if isinstance(x, torch.Tensor):
        return x[idx]
    return {k: v[idx] for k, v in x.items()}


def inputs_to(x: Inputs, device: str | torch.device) -> Inputs:
    """``x`` (a tensor or every entry of a mapping) on ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    return {k: v.to(device) for k, v in x.items()}


def inputs_device(x: Inputs) -> torch.device:
    """The device of ``x`` (of its first entry for mappings)."""
    if isinstance(x, torch.Tensor):
        return x.device
    return next(iter(x.values())).device


def require_tensor(x: Inputs, attack: str) -> torch.Tensor:
    """``x`` itself when it is a tensor; a clear error for mapping (multimodal) inputs."""
    if not isinstance(x, torch.Tensor):
        from robustbench_lite.core.errors import UnsupportedThreatError

        raise UnsupportedThreatError(
            f"attack {attack} takes one input tensor, got a mapping of modalities "
            f"({', '.join(sorted(x))}); use a patch attack such as fusion_patch for multimodal models"
        )
    return x

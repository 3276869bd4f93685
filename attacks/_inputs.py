"""Input checks shared by attacks that work on plain tensors only."""

from __future__ import annotations

import torch

from robustbench_lite.errors import UnsupportedThreatError
from robustbench_lite.types import Inputs


def require_tensor(x: Inputs, attack: str) -> torch.Tensor:
    """``x`` itself when it is a tensor; a clear error for mapping (multimodal) inputs."""
    if not isinstance(x, torch.Tensor):
        raise UnsupportedThreatError(
            f"attack {attack} needs tensor inputs, not a mapping of {sorted(x)}; "
            "use an attack that supports multimodal inputs"
        )
    return x

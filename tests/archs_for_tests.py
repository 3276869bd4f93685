"""Architectures referenced as ``archs_for_tests:NAME`` by the loading and CLI tests.

Importable because pytest puts tests/ on sys.path; the CLI tests pass it via PYTHONPATH.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """Flatten + one linear layer: (N, 1, 8, 8) digits -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def tiny_net() -> TinyNet:
    """A factory instead of a class."""
    return TinyNet()


class NeedsArgs(nn.Module):
    """Cannot be built with no arguments."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(64, width)


class Crashes(TinyNet):
    """A network whose forward pass fails with a non-torch error (CLI exit code 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ZeroDivisionError("division by zero inside forward")


INSTANCE = TinyNet()
NOT_A_MODULE = 3

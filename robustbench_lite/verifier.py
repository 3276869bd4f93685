"""The Verifier base class and its result."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from robustbench_lite.model import Model
from robustbench_lite.threat import ThreatModel
from robustbench_lite.types import Status


@dataclass(frozen=True)
class VerificationResult:
    """Per-sample verdicts of a verifier.

    ``counterexamples[i]`` is a concrete input for sample ``i`` that violates the property and
    was re-checked by a float32 forward pass; a FALSIFIED verdict without one is never reported.
    ``reasons[i]`` explains an UNKNOWN (timeout, unsupported layer, solver gave up).
    """

    per_sample: tuple[Status, ...]
    counterexamples: Mapping[int, torch.Tensor] = field(default_factory=dict)
    reasons: Mapping[int, str] = field(default_factory=dict)
    layer_bounds: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None
    elapsed_s: float = 0.0
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        """VERIFIED if all samples are, FALSIFIED if any is, else UNKNOWN."""
        if self.per_sample and all(s is Status.VERIFIED for s in self.per_sample):
            return Status.VERIFIED
        if any(s is Status.FALSIFIED for s in self.per_sample):
            return Status.FALSIFIED
        return Status.UNKNOWN

    @property
    def verified_fraction(self) -> float:
        """Fraction of samples proven robust."""
        n = len(self.per_sample)
        return sum(s is Status.VERIFIED for s in self.per_sample) / n if n else float("nan")

    @property
    def falsified_fraction(self) -> float:
        """Fraction of samples with a re-checked counterexample."""
        n = len(self.per_sample)
        return sum(s is Status.FALSIFIED for s in self.per_sample) / n if n else float("nan")


class Verifier(ABC):
    """Base class of verifiers; register with ``@rbl.register_verifier(name)``."""

    name: ClassVar[str] = "verifier"

    @abstractmethod
    def verify(
        self, model: Model, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *, timeout_s: float
    ) -> VerificationResult:
        """Decide local robustness of each sample ``x[i]`` (N, ...) with label ``y[i]``."""

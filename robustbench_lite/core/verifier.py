"""The Verifier base class and its result."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.core.model import Model
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Status


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
        return status_fraction(self.per_sample, Status.VERIFIED)

    @property
    def falsified_fraction(self) -> float:
        """Fraction of samples with a re-checked counterexample."""
        return status_fraction(self.per_sample, Status.FALSIFIED)

    @property
    def unknown_fraction(self) -> float:
        """Fraction of samples left undecided (timeout, unsupported layer, solver gave up)."""
        return status_fraction(self.per_sample, Status.UNKNOWN)


def status_fraction(per_sample: Sequence[Status], status: Status) -> float:
    """Fraction of the verdicts ``per_sample`` equal to ``status``; NaN for no samples."""
    n = len(per_sample)
    return sum(s is status for s in per_sample) / n if n else float("nan")


#: Seconds per sample (or per property) a verifier gets unless told otherwise.
DEFAULT_TIMEOUT_S = 60.0


class Verifier(ABC):
    """Base class of verifiers; register with ``@rbl.register_verifier(name)``."""

    name: ClassVar[str] = "verifier"

    @abstractmethod
    def verify(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        timeout_s: float,
    ) -> VerificationResult:
        """Decide local robustness of each sample ``x[i]`` (N, ...) with label ``y[i]``."""

    def read_property(
        self, path: str | Path, *, n_inputs: int | None = None, n_outputs: int | None = None
    ) -> Any:
        """Parse a property file (VNN-COMP's VNNLIB) into what ``verify_property`` decides.

        ``n_inputs`` / ``n_outputs``, when given, are the network's flat input and output
        sizes: a property naming a variable beyond them is refused before arrays are sized.

        Verifiers that decide whole properties override this and ``verify_property``; faces
        (the CLI) reach property parsers only through them, never by importing a plug-in.
        """
        raise RobustbenchLiteError(
            f"verifier {self.name!r} does not read property files; the complete verifier does"
        )

    def verify_property(
        self, model: Model, prop: Any, *, timeout_s: float, onnx_path: str | None = None
    ) -> Any:
        """Decide one property from ``read_property`` (VNNLIB semantics: FALSIFIED = a counterexample exists).

        The result has ``status``, ``reason``, ``x`` and ``y`` (the re-checked witness) and ``stats``.
        """
        raise RobustbenchLiteError(
            f"verifier {self.name!r} does not decide property files; the complete verifier does"
        )

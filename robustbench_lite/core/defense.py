"""Defenses (Model -> Model) and detectors (scan a model, report whether it is compromised)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robustbench_lite.core.model import Model


class Defense(ABC):
    """An input defense that wraps a model, e.g. bit-depth reduction; returns a new Model.

    The defended model records the defense in :attr:`Model.defenses` (an
    :class:`~robustbench_lite.core.model.AppliedDefense`: whether it is random, whether its
    gradient is usable) and, for a defense with useless gradients, carries a BPDA surrogate in
    :attr:`Model.surrogate`; ``standard`` reads both to choose BPDA / EOT, and a random model is
    judged over :attr:`Model.draws` forward passes. Input transforms in ``defenses/`` build all
    of this with ``defenses/_transform.py:defend``.
    """

    name: ClassVar[str] = "defense"

    @abstractmethod
    def apply(self, model: Model) -> Model:
        """The defended model (its ``net`` includes the defense; bounds are unchanged)."""


@dataclass(frozen=True)
class Detection:
    """A detector's verdict on one model.

    Args:
        flagged: the model is judged compromised (e.g. trojaned).
        score: the detector's statistic; flagged when it crosses ``threshold``.
        evidence: what supports the verdict, e.g. ``{"triggers": ["cinematically"]}``.
    """

    flagged: bool
    score: float
    threshold: float
    evidence: Mapping[str, Any] = field(default_factory=dict)


class Detector(ABC):
    """Base class of model scanners (T-Miner); register with ``@rbl.register_detector``."""

    name: ClassVar[str] = "detector"

    @abstractmethod
    def scan(self, model: Model, data: Any = None) -> Detection:
        """Scan ``model``; ``data`` is whatever auxiliary data the method documents it needs."""

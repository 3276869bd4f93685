"""Properties: input boxes with a DNF of linear output constraints describing a counterexample.

A :class:`Property` is violated (``sat``, FALSIFIED) when for some case some input ``x`` in
``[lo, hi]`` has outputs ``y`` with ``C y <= d`` for one of that case's disjuncts ``(C, d)``.
It holds (``unsat``, VERIFIED) when no such input exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robustbench_lite.core.errors import UnsupportedThreatError
from robustbench_lite.core.threat import ThreatModel
from robustbench_lite.core.types import Goal, Norm


@dataclass(frozen=True)
class Case:
    """One input box ``[lo, hi]`` (n_in,) and its output disjuncts ``(C (r, n_out), d (r,))``."""

    lo: np.ndarray
    hi: np.ndarray
    disjuncts: tuple[tuple[np.ndarray, np.ndarray], ...]


@dataclass(frozen=True)
class Property:
    """A disjunction of :class:`Case` s over flat inputs (n_inputs,) and outputs (n_outputs,)."""

    n_inputs: int
    n_outputs: int
    cases: tuple[Case, ...]
    l2_ball: tuple[np.ndarray, float] | None = None

    def holds_at(self, x: np.ndarray, y: np.ndarray) -> bool:
        """True when ``(x, y)`` is a counterexample: ``x`` in some box and ``y`` meets a disjunct.

        Exact comparison without tolerance (``x``, ``y`` are flat float arrays).
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if (
            self.l2_ball is not None
            and float(np.linalg.norm(x - self.l2_ball[0])) > self.l2_ball[1]
        ):
            return False
        for case in self.cases:
            if (x < case.lo).any() or (x > case.hi).any():
                continue
            for C, d in case.disjuncts:
                if C.shape[0] == 0 or bool((C @ y <= d).all()):
                    return True
        return False


def robustness_property(
    x: np.ndarray,
    label: int,
    n_classes: int,
    threat: ThreatModel,
    bounds: tuple[float, float],
    target: int | None = None,
) -> Property:
    """Local robustness of flat input ``x`` under an L_inf or L_2 ball, clipped to ``bounds``.

    An L_2 ball is verified through its enclosing L_inf box (sound for VERIFIED, incomplete);
    counterexamples must lie in the ball itself (``l2_ball``), so a box point outside it is
    never reported as FALSIFIED.

    Counterexample: some class ``j != label`` with ``y_j >= y_label`` (ties count as attacks),
    or for a targeted threat the target class ``y_t >= y_label``.
    """
    if threat.norm not in (Norm.LINF, Norm.L2):
        raise UnsupportedThreatError(
            f"threat {threat.name}: the complete verifier supports linf and l2 balls"
        )
    if threat.goal is Goal.TOP_K:
        raise UnsupportedThreatError(
            f"threat {threat.name}: the complete verifier does not support top_k goals"
        )
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    lo = np.maximum(x - threat.eps, bounds[0])
    hi = np.minimum(x + threat.eps, bounds[1])
    others = [target] if target is not None else [j for j in range(n_classes) if j != label]
    disjuncts = []
    for j in others:
        row = np.zeros((1, n_classes))
        row[0, label], row[0, j] = 1.0, -1.0  # y_label - y_j <= 0
        disjuncts.append((row, np.zeros(1)))
    ball = (x, float(threat.eps)) if threat.norm is Norm.L2 else None
    return Property(x.size, n_classes, (Case(lo, hi, tuple(disjuncts)),), l2_ball=ball)

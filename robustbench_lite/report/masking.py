"""Gradient-masking flags over an eps sweep: signs that an evaluation, not the model, is weak.

Each rule is a sanity check of the kind Carlini et al. ("On Evaluating Adversarial
Robustness", 2019, arXiv 1902.06705, sections 5.5-5.7) and Athalye, Carlini and Wagner (2018,
arXiv 1802.00420) list: a working attack at a larger budget does at least as well as at a
smaller one, a gradient attack does at least as well as a black-box one, and a budget that
lets every input reach a common point breaks (almost) everything. A flag is a warning in the
report, never a failed check: it says where the numbers cannot be trusted.

The rules take plain per-eps sequences (sorted by eps, one entry per point of a sweep on the
same samples), so they are independent of how a report stores its checks:

``non_monotone_accuracy``
    robust accuracy at some eps exceeds the lowest robust accuracy at a smaller eps by more
    than one sample (the threat sets are nested, so an attack that finds the worst case never
    does this; a one-sample tie is random-start noise, not a flag).
``loss_not_increasing``
    the mean cross-entropy of the true label at the adversarial points falls, between a
    smaller and a larger eps, by more than :data:`LOSS_DROP` (relative) and
    :data:`LOSS_DROP_ABS` (absolute). Checked for untargeted sweeps only (a targeted attack
    does not maximise the true label's loss).
``black_box_beats_white_box``
    at the same threat, defense and samples, a black-box attack (one that counts queries)
    left fewer robust samples than the best gradient attack there, by more than one sample and
    more than :data:`BLACK_BOX_MARGIN` of the gradient attack's robust samples (a weak
    single-step attack beaten by Square is no flag while PGD does as well), or the attack
    itself reported ``warning`` (``standard``: its black-box member broke samples the gradient
    members did not). The margin is a development choice: on ``zoo:digits-cnn`` (540 test
    digits, linf 0.1) Square with 1,000 queries left 4 fewer robust samples than PGD-40 (282
    vs 286, 1.4%), ordinary differences in attack strength; a masked model's gap is far larger
    (a rounding layer: 78 vs 88 of 100 at linf 0.1, 22 vs 85 at 0.3).
``unbounded_eps_not_zero``
    at an eps of at least half the diameter of the input box (:func:`unbounded_fraction`),
    the threat sets of any two inputs share their midpoint, so at most one class can keep
    robust samples and a working untargeted attack reaches (almost) 0; any robust sample
    left there is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: A relative fall of the mean adversarial loss that counts as "not increasing".
LOSS_DROP = 0.05
#: ... and the absolute fall (nats) it must also exceed (tiny losses are noise).
LOSS_DROP_ABS = 0.01
#: The fraction of a gradient attack's robust samples a black-box attack must break beyond it.
BLACK_BOX_MARGIN = 0.05
#: eps / (diameter of the input box) from which a sweep point counts as unbounded.
UNBOUNDED_FRACTION = 0.5

NON_MONOTONE = "non_monotone_accuracy"
LOSS_NOT_INCREASING = "loss_not_increasing"
BLACK_BOX = "black_box_beats_white_box"
UNBOUNDED = "unbounded_eps_not_zero"
#: Every flag name, in report order.
FLAGS = (NON_MONOTONE, BLACK_BOX, LOSS_NOT_INCREASING, UNBOUNDED)


@dataclass(frozen=True)
class MaskingFlag:
    """One fired rule at one eps of a sweep.

    Args:
        name: one of :data:`FLAGS`.
        eps: the eps at which the rule fired.
        text: one line for humans (what was seen, what it means).
    """

    name: str
    eps: float
    text: str

    def to_dict(self) -> dict[str, object]:
        return {"flag": self.name, "eps": self.eps, "text": self.text}


def one_sample(n: int) -> float:
    """The accuracy step of one sample among ``n`` (the tolerance of the accuracy rules)."""
    return 1.0 / n if n > 0 else 0.0


def non_monotone(eps: Sequence[float], robust: Sequence[float], n: int) -> list[MaskingFlag]:
    """Points whose robust accuracy is above the lowest one at a smaller eps by more than one
    sample of ``n``; ``eps`` ascending, ``robust`` the robust accuracy at each."""
    out: list[MaskingFlag] = []
    best_eps, best = math.nan, math.inf
    for e, acc in zip(eps, robust):
        if acc is None or math.isnan(acc):
            continue
        if acc - best > one_sample(n) * 1.5:
            out.append(
                MaskingFlag(
                    NON_MONOTONE,
                    e,
                    f"robust accuracy {acc:.4f} at eps {e:g} is above {best:.4f} at the smaller "
                    f"eps {best_eps:g}: the attack misses points a smaller budget found "
                    "(gradient masking or too few steps)",
                )
            )
        if acc < best:
            best_eps, best = e, acc
    return out


def loss_not_increasing(eps: Sequence[float], loss: Sequence[float | None]) -> list[MaskingFlag]:
    """Points whose mean adversarial loss fell below the highest one at a smaller eps by more
    than :data:`LOSS_DROP` (relative) and :data:`LOSS_DROP_ABS`; ``None`` losses are skipped."""
    out: list[MaskingFlag] = []
    top_eps, top = math.nan, -math.inf
    for e, value in zip(eps, loss):
        if value is None or not math.isfinite(value):
            continue
        drop = top - value
        if drop > LOSS_DROP_ABS and drop > LOSS_DROP * abs(top):
            out.append(
                MaskingFlag(
                    LOSS_NOT_INCREASING,
                    e,
                    f"mean adversarial loss {value:.4g} at eps {e:g} is below {top:.4g} at the "
                    f"smaller eps {top_eps:g}: a larger budget should not lower the loss the "
                    "attack reaches (masked or misleading gradients)",
                )
            )
        if value > top:
            top_eps, top = e, value
    return out


def black_box_beats(
    eps: float, white: float, black: float, black_name: str, n: int
) -> MaskingFlag | None:
    """A flag when the black-box attack ``black_name`` reached a robust accuracy ``black``
    lower than ``white`` (the best gradient attack's) by more than one sample of ``n`` and
    more than :data:`BLACK_BOX_MARGIN` of ``white``."""
    if white - black <= max(one_sample(n) * 1.5, BLACK_BOX_MARGIN * white):
        return None
    return MaskingFlag(
        BLACK_BOX,
        eps,
        f"black-box {black_name} reached robust accuracy {black:.4f} at eps {eps:g}, below "
        f"the best gradient attack's {white:.4f}: gradients are misleading (gradient masking)",
    )


def attack_warning(eps: float, text: str | None) -> MaskingFlag:
    """The attack's own black-box warning (``standard``'s ``warning``) at ``eps``."""
    return MaskingFlag(
        BLACK_BOX,
        eps,
        text
        or f"the attack's black-box member broke samples its gradient members did not (eps {eps:g})",
    )


def unbounded_fraction(eps: float, eps_limit: float | None) -> float | None:
    """``eps`` as a fraction of the input box's diameter ``eps_limit`` (the largest meaningful
    eps, :func:`robustbench_lite.core.threat.largest_meaningful_eps`); None when unknown."""
    if eps_limit is None or not eps_limit > 0 or not math.isfinite(eps_limit):
        return None
    return eps / eps_limit


def unbounded_not_zero(
    eps: Sequence[float], robust: Sequence[float], limits: Sequence[float | None]
) -> list[MaskingFlag]:
    """Points at an eps of at least :data:`UNBOUNDED_FRACTION` of the box diameter (``limits``)
    where some sample is still robust."""
    out: list[MaskingFlag] = []
    for e, acc, limit in zip(eps, robust, limits):
        frac = unbounded_fraction(e, limit)
        if frac is None or frac < UNBOUNDED_FRACTION or acc is None or not acc > 0:
            continue
        out.append(
            MaskingFlag(
                UNBOUNDED,
                e,
                f"robust accuracy {acc:.4f} at eps {e:g} ({frac:.0%} of the input box's "
                "diameter, where any two inputs' threat sets share a point): a working attack "
                "reaches about 0 here (gradient masking or a weak attack)",
            )
        )
    return out

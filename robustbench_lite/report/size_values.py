"""Perturbation sizes as report values: ``<norm>_mean`` and ``<norm>_median`` over successes.

An attack that lists norms in ``size_norms`` gets each sample's perturbation measured by the
base class (``AttackResult.sizes``). Its report averages them over the samples that were
clean-correct *and* broken (success re-checked on the real model): a failed sample, whose input
comes back unchanged, never counts as a size of 0. With no success the values are NaN, so an
attack that breaks little never looks cheap; read them together with ``success_rate``.
SDA (Lun et al., CVPR 2025) reports its mean L0 this way; the ordered top-K attacks
(QuadAttacK, NeurIPS 2023) their l1 / l2 / linf energies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch


def size_value_names(norms: Sequence[str]) -> tuple[str, ...]:
    """The value names :func:`size_values` produces for ``norms``."""
    return tuple(f"{norm}_{stat}" for norm in norms for stat in ("mean", "median"))


def size_values(
    clean_correct: Sequence[bool], success: Sequence[bool], sizes: Mapping[str, Sequence[float]]
) -> dict[str, Any]:
    """Mean and median of each per-sample size vector (N,) over clean-correct successes.

    Args:
        clean_correct: (N,) the model classified the clean sample correctly.
        success: (N,) the re-checked attack success.
        sizes: norm name -> (N,) perturbation size of each sample in that norm.
    """
    ok = torch.tensor(clean_correct, dtype=torch.bool) & torch.tensor(success, dtype=torch.bool)
    out: dict[str, Any] = {}
    for norm, vector in sizes.items():
        vals = torch.tensor(vector, dtype=torch.float64)[ok]
        out[f"{norm}_mean"] = float(vals.mean()) if vals.numel() else math.nan
        # the lower median, as torch.median: an actual sample's size
        out[f"{norm}_median"] = float(vals.median()) if vals.numel() else math.nan
    return out

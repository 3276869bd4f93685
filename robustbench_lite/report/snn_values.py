"""Text values of spiking-network attacks: which surrogate gradient an attack used.

Report values are numbers and flags (:func:`robustbench_lite.report.values.numeric`); a few
metrics are short labels that belong beside them, e.g. ``surrogate: pdsg`` or
``surrogate: atan(alpha=2)`` of ``sda``, ``snn_fgsm`` and ``snn_pgd`` (Lun et al., CVPR 2025,
arXiv 2503.03272), so a suite comparing PDSG with a fixed surrogate shows which is which. The
surrogate's width is the number ``surrogate_alpha``; spikes per sample and the mean L0 over
successes are numbers (``spikes_per_sample``, ``spikes_per_sample_adv``, ``l0_mean``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Metric names whose text values are report values.
LABEL_METRICS: tuple[str, ...] = ("surrogate",)
#: Longest label kept (longer text stays detail).
MAX_LABEL = 80


def label_values(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The entries of ``metrics`` that are short labels named in :data:`LABEL_METRICS`."""
    return {
        k: v
        for k, v in metrics.items()
        if k in LABEL_METRICS and isinstance(v, str) and len(v) <= MAX_LABEL
    }

"""Text values of adaptive attacks on defended models: what the attack did to the defense, and why.

``standard`` on a model with input-transform defenses (``attacks/standard.py``; Athalye,
Carlini and Wagner 2018, arXiv 1802.00420) says in words which gradients it used
(``adaptive``: ``BPDA``, ``EOT`` or ``BPDA+EOT``; ``adaptive_text``: "BPDA used because
jpeg(75) is not differentiable: ...") and whether gradient masking is suspected
(``masking_text``); every attack on a randomized model states how success was judged over its
forward passes (``judging``, from :func:`robustbench_lite.core.attack.judging_text`). They are
report values like the SNN ``surrogate`` label (:mod:`report.snn_values`), kept through the same
path (:func:`robustbench_lite.report.values.numeric`, merged across cells to the distinct
texts), so a reader of any format sees why a defended model's number can be trusted: the JSON
and HTML list them with the other values, the table and Markdown formats print one line each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robustbench_lite.report.model import CheckResult

#: Metric names whose text values are report values, in the order reports print them.
TEXT_METRICS: tuple[str, ...] = ("adaptive", "adaptive_text", "masking_text", "judging")
#: The sentences printed under the table and in Markdown (``adaptive`` is their first word).
LINE_METRICS: tuple[str, ...] = ("adaptive_text", "masking_text", "judging")
#: Longest text kept as a value (longer text stays detail).
MAX_TEXT = 400


def text_values(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The entries of ``metrics`` that are texts named in :data:`TEXT_METRICS`."""
    return {
        k: v
        for k, v in metrics.items()
        if k in TEXT_METRICS and isinstance(v, str) and len(v) <= MAX_TEXT
    }


def adaptive_lines(results: Sequence[CheckResult]) -> list[str]:
    """One line ``<check id>: <text>`` per text of :data:`LINE_METRICS` a check carries."""
    return [
        f"{r.id}: {r.values[k]}"
        for r in results
        for k in LINE_METRICS
        if isinstance(r.values.get(k), str)
    ]

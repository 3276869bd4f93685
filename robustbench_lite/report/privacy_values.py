"""Model-inversion values: how much of each private class a reconstruction reveals.

An inversion attack (``mi_face``, ``gmi``, ``lomma`` under ``none:targeted``) reconstructs one
image per private class. The reconstruction is judged twice: by the *target* model (re-checked
by the Attack base class: does the target classify it as its class? ``target_top1``) and by an
independent *evaluation* classifier (the attack's ``eval_top1``, ``eval_top5`` and ``knn_dist``,
the protocol of GMI, arXiv 1911.07135, and LOMMA, arXiv 2304.01669). Fooling the target is easy;
``eval_top1`` is the privacy number. The evaluator's name stays detail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from robustbench_lite.core.attack import success_rate

#: The values :func:`inversion_values` produces (the attacks' metric names plus ``target_top1``).
INVERSION_METRICS: tuple[str, ...] = ("target_top1", "eval_top1", "eval_top5", "knn_dist")


def inversion_values(target_hit: Sequence[bool], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``target_top1``: fraction of reconstructions (N,) the target model puts in their class;
    the attack's numeric privacy scores (``eval_top1``, ``eval_top5``, ``knn_dist``, ...)."""
    hit = torch.tensor(target_hit, dtype=torch.bool)
    out: dict[str, Any] = {"target_top1": success_rate(torch.ones_like(hit), hit)}
    out.update(
        {
            k: v
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    )
    return out

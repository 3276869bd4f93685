"""``robustbench-lite attack`` with a model-inversion attack (``mi_face``, ``gmi``, ``lomma``).

An inversion attack reads no data: it reconstructs every class of the model once, exactly as
the suite's ``invert:`` check does (:func:`robustbench_lite.suite.kinds.invert.invert_classes`,
the one inversion path), and its values are those of that check (``target_top1``,
``eval_top1``, ``eval_top5``, ``knn_dist``; :mod:`robustbench_lite.report.privacy_values`).
"""

from __future__ import annotations

import argparse
from typing import Any

from robustbench_lite.core.attack import Attack
from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.core.model import Model


def is_inversion(attack: Attack) -> bool:
    """Whether ``attack`` is a model-inversion attack (what an ``invert:`` check runs)."""
    from robustbench_lite.suite.kinds.invert import INVERSION_ATTACKS

    return INVERSION_ATTACKS.inverts(type(attack))


def check_inversion_args(args: argparse.Namespace, attack: Attack) -> None:
    """Refuse ``--data`` and ``--n`` for an inversion attack (one line, before any work)."""
    given = [flag for flag, key in (("--data", "data"), ("--n", "n")) if getattr(args, key, None)]
    if given:
        raise RobustbenchLiteError(
            f"{' and '.join(given)}: {attack.name} is a model-inversion attack and reads no data; "
            "it reconstructs every class of the model (drop the option)"
        )


def run_inversion(
    args: argparse.Namespace, attack: Attack, model: Model
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """``(values, elapsed_s, detail)`` of inverting every class of ``model`` with ``attack``,
    seeded by ``--seed``."""
    import torch

    from robustbench_lite.report.privacy_values import inversion_values
    from robustbench_lite.report.values import numeric
    from robustbench_lite.suite.kinds.invert import invert_classes

    r = invert_classes(attack, model, generator=torch.Generator().manual_seed(args.seed))
    values = inversion_values(r.success.tolist(), numeric(r.metrics))
    classes = r.target.tolist() if r.target is not None else []
    return values, r.elapsed_s, {"classes": classes, "target_hit": r.success.tolist()}

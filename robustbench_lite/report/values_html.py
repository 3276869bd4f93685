"""The HTML report's "More values" section: every value a check carries beyond the main columns.

The checks table shows the values every kind shares (clean and robust accuracy, success rate,
...); attack- and kind-specific values (SDA's ``l0_mean`` over successes, the ``surrogate`` and
``spikes_per_sample`` of the SNN attacks, the top-K ``l2_mean``, the inversion scores
``eval_top1`` / ``knn_dist``) are listed here, one line per check, so no value is JSON-only.
"""

from __future__ import annotations

import html

from robustbench_lite.report.formats import MAIN_VALUES, plain, value_text
from robustbench_lite.report.model import CheckResult


def more_values_section(results: tuple[CheckResult, ...]) -> list[str]:
    """HTML parts: a heading and one ``<li>`` per check with values beyond ``MAIN_VALUES``."""
    items = []
    for r in results:
        extra = [(k, v) for k, v in r.values.items() if k not in MAIN_VALUES]
        if extra:
            text = ", ".join(f"{k} = {value_text(v)}" for k, v in extra)
            items.append(f"<li><b>{_e(r.id)}</b>: {_e(text)}</li>")
    return ["<h2>More values</h2>", "<ul>", *items, "</ul>"] if items else []


def _e(value: object) -> str:
    return html.escape(plain(value))

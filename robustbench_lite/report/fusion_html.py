"""The HTML report's figure for attacks on fusion detectors: camera images with the patch.

One column per example scene kept by :func:`robustbench_lite.report.fusion_values.example_arrays`
(the first cell's first scenes): the clean camera image, the attacked one (the patch is the
only change), and the stage-1 sensitivity heatmap when the attack computed one (``fusion``,
``fusion_heatmap``). Titles carry the target's score before and after.
"""

from __future__ import annotations

import io
from typing import Any

from robustbench_lite.report.fusion_values import decode_example


def fusion_figure(ex: dict[str, Any]) -> bytes:
    """PNG bytes of the figure for one check's ``detail["fusion_examples"]``."""
    from matplotlib.figure import Figure

    scores = ex.get("target_score")
    k = int(ex["k"])
    rows = [("clean", decode_example(ex["camera"])), ("patched", decode_example(ex["camera_adv"]))]
    if "heatmap" in ex:
        rows.append(("heatmap", decode_example(ex["heatmap"])))
    fig = Figure(figsize=(2.6 * k + 0.4, 1.5 * len(rows) + 0.3), dpi=100, layout="constrained")
    axes = fig.subplots(len(rows), k, squeeze=False)
    for r, (name, arr) in enumerate(rows):
        for i in range(k):
            ax = axes[r][i]
            if name == "heatmap":
                ax.imshow(arr[i], cmap="inferno", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(arr[i].transpose(1, 2, 0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and scores is not None:
                ax.set_title(f"target {scores[0][i]:.2f} -> {scores[1][i]:.2f}", fontsize=8)
        axes[r][0].set_ylabel(name, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()

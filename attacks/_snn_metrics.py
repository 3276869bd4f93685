"""What the SNN attacks report besides success: the surrogate used and spikes per sample.

``surrogate`` is the twin's surrogate as text (``pdsg``, ``atan(alpha=2)``; the report keeps it
as a value), ``surrogate_alpha`` its width for ``atan`` / ``sigmoid``. ``spikes_per_sample`` and
``spikes_per_sample_adv`` are the mean number of spikes the *real* (Heaviside) network fires per
sample, summed over all LIF layers and time steps, on the clean and on the returned inputs.
"""

from __future__ import annotations

from typing import Any

import torch

from robustbench_lite.core.model import Model
from robustbench_lite.worlds.snn import Surrogate, lif_layers


def spikes_per_sample(model: Model, x: torch.Tensor) -> torch.Tensor:
    """Spikes (N,) float64 the real network of ``model`` fires on ``x`` (N, ...), all LIF layers."""
    counts = torch.zeros(len(x), dtype=torch.float64)

    def count(_module: Any, _inputs: Any, out: torch.Tensor) -> None:  # out [T, N, ...]
        counts.add_(out.detach().transpose(0, 1).flatten(1).sum(dim=1).double().cpu())

    hooks = [layer.register_forward_hook(count) for layer in lif_layers(model.net)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return counts


def snn_metrics(
    model: Model, surrogate: Surrogate, x: torch.Tensor, x_adv: torch.Tensor
) -> dict[str, Any]:
    """The surrogate's label and width, and mean spikes per sample on ``x`` and ``x_adv`` (N, ...)."""
    out: dict[str, Any] = {"surrogate": surrogate.label()}
    if surrogate.kind in ("atan", "sigmoid"):
        out["surrogate_alpha"] = float(surrogate.alpha)  # type: ignore[arg-type]
    out["spikes_per_sample"] = float(spikes_per_sample(model, x).mean())
    out["spikes_per_sample_adv"] = float(spikes_per_sample(model, x_adv).mean())
    return out

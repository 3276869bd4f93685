"""The evaluation protocol of GMI (arXiv 1911.07135) and LOMMA (arXiv 2304.01669).

An *evaluation classifier* E, trained on the private data with a different architecture and seed
from the target T, judges each reconstruction:

- attack accuracy top-1 / top-5: E's top-1 (top-5) prediction contains the reconstructed class;
  computed from E's ranked outputs (not the official code's best-of-5-restarts "Acc5"). With 5
  private classes (digits) top-5 is 1 by construction;
- KNN distance: the l2 distance in E's penultimate feature space from the reconstruction to the
  nearest private *training* image of the reconstructed class (averaged over reconstructions);
- a figure of reconstructions beside real private images of the same classes.

E is never T: :func:`check_independent` refuses an evaluator that is, or has the weights of, the
target. Restarts are always selected with T, never with E.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.errors import EvaluatorIsTarget, UnsupportedThreatError
from robustbench_lite.core.model import Model
from robustbench_lite.zoo.inversion_setting import InversionSetting

__all__ = [
    "check_independent",
    "evaluate_reconstructions",
    "load_evaluator",
    "penultimate",
    "reconstruction_figure",
]


def penultimate(model: Model, x: torch.Tensor) -> torch.Tensor:
    """Features (N, F) before the last layer: ``net.features(x)`` or ``net[:-1](x)`` (Sequential)."""
    net = model.net
    x = model.normalize(x)
    if hasattr(net, "features") and callable(net.features):
        return net.features(x).flatten(1)
    if isinstance(net, nn.Sequential) and len(net) > 1:
        return net[:-1](x).flatten(1)
    raise UnsupportedThreatError(
        f"model {model.name}: cannot find penultimate features; use an nn.Sequential whose last "
        "layer is the classifier, or give the network a features(x) method"
    )


def _fingerprint(net: nn.Module) -> list[torch.Tensor]:
    return [t.detach() for t in net.state_dict().values()]


def check_independent(target: Model, evaluator: Model) -> None:
    """Raise :class:`EvaluatorIsTarget` if ``evaluator`` is ``target`` or has its weights."""
    same = evaluator is target or evaluator.net is target.net or evaluator.name == target.name
    if not same:
        a, b = _fingerprint(target.net), _fingerprint(evaluator.net)
        same = len(a) == len(b) and all(
            u.shape == v.shape and torch.equal(u, v) for u, v in zip(a, b)
        )
    if same:
        raise EvaluatorIsTarget(
            f"evaluation classifier {evaluator.name} is the target model {target.name}; judge "
            "reconstructions with an independent classifier such as zoo:<setting>-private-eval"
        )


def load_evaluator(setting: InversionSetting) -> Model:
    """The setting's evaluation classifier ``zoo:<setting>-private-eval`` (trained on first use)."""
    from robustbench_lite.zoo import load_zoo_model

    return load_zoo_model(f"{setting.name}-private-eval")


def evaluate_reconstructions(
    target_model: Model,
    evaluator: Model,
    x_rec: torch.Tensor,
    classes: torch.Tensor,
    setting: InversionSetting,
) -> dict[str, Any]:
    """Privacy scores of reconstructions ``x_rec`` (N, C, H, W) of private ``classes`` (N,).

    Returns ``eval_top1``, ``eval_top5`` (fractions in [0, 1]), ``knn_dist`` (mean l2 in E's
    feature space) and ``eval_model`` (E's name). Raises if E is the target.
    """
    check_independent(target_model, evaluator)
    classes = classes.to(torch.int64).cpu()
    x_rec = x_rec.detach().cpu()
    logits = evaluator.logits(x_rec)
    k = min(5, logits.shape[1])
    top5 = (logits.topk(k, dim=1).indices == classes[:, None]).any(dim=1)
    x_priv, y_priv, _ = setting.private_data("train")
    with torch.no_grad():
        feats, priv = penultimate(evaluator, x_rec), penultimate(evaluator, x_priv)
    knn = torch.stack(
        [torch.cdist(feats[i : i + 1], priv[y_priv == c]).min() for i, c in enumerate(classes)]
    )
    return {
        "eval_top1": float((logits.argmax(dim=1) == classes).float().mean()),
        "eval_top5": float(top5.float().mean()),
        "knn_dist": float(knn.mean()),
        "eval_model": evaluator.name,
    }


def reconstruction_figure(
    recons: Mapping[str, torch.Tensor],
    classes: torch.Tensor,
    setting: InversionSetting,
    path: str | Path,
    *,
    n_real: int = 3,
    show: Sequence[int] | None = None,
    title: str = "",
) -> Path:
    """Save a PNG grid: one row per private class, ``n_real`` real training images, then one
    reconstruction per method (the first one of that class in ``recons[method]`` (N, C, H, W)).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_priv, y_priv, _ = setting.private_data("train")
    rows = list(show) if show is not None else sorted({int(c) for c in classes})
    cols = n_real + len(recons)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols, 1.2 * len(rows)), squeeze=False)
    for r, c in enumerate(rows):
        real = x_priv[y_priv == c][:n_real]
        cells = [("real", img) for img in real]
        for method, xs in recons.items():
            hit = (classes == c).nonzero()[:, 0]
            cells.append((method, xs[hit[0]] if hit.numel() else torch.zeros_like(real[0])))
        for j, (label, img) in enumerate(cells):
            ax = axes[r, j]
            ax.imshow(img.detach().cpu()[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"class {c}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

"""What an attack cell records for the scaling metrics: the adversarial loss per sample, the
boundary-tilting angle per sample, and the diameter of the input box.

**Boundary-tilting deviation angle** (Tanay and Griffin 2016, arXiv 1608.07690, card 6b).
For a sample of class i that the attack moved to class j, the classifier's local pairwise
boundary normal is estimated by the adversarial direction ``d = x_adv - x`` and the
nearest-centroid direction is ``w_nc = mu_j - mu_i`` (class centroids of the check's data, in
the model's raw input space, unwhitened as the card asks). The deviation angle is
``arccos(<d, w_nc> / (|d| |w_nc|))`` in degrees; the check reports the median over the broken
samples. Small angles: the attack moves the input toward the other class; near 90 degrees: the
boundary is tilted along directions the data does not vary in. Deviation from the card: the
card defines the angle for a linear classifier's weight vector (or a network's last layer);
here the input-space adversarial direction stands in for the weight difference, so it also
applies to a network end to end. For linf attacks ``d`` is sign-like, which biases the angle
upward; compare angles across models at one threat, not across norms.

The adversarial loss is the cross-entropy of the true label at ``x_adv`` (one forward pass of
the model after the attack; a randomized model gets one seeded draw), read by the
``loss_not_increasing`` masking rule (:mod:`robustbench_lite.report.masking`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from robustbench_lite.core.threat import ThreatModel, largest_meaningful_eps
from robustbench_lite.core.types import Inputs

if TYPE_CHECKING:
    from robustbench_lite.core.attack import AttackResult
    from robustbench_lite.core.model import Model

#: Rows per chunk when summing class centroids in float64.
_CHUNK = 1024


def class_centroids(
    x: torch.Tensor, y: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means of ``x`` (N, ...) by label ``y`` (N,): (K, D) float64, and (K,) bool saying
    which classes have samples (absent classes have a zero row)."""
    flat = x.detach().reshape(len(x), -1)
    sums = torch.zeros(num_classes, flat.shape[1], dtype=torch.float64, device=flat.device)
    for start in range(0, len(flat), _CHUNK):
        part = flat[start : start + _CHUNK]
        sums.index_add_(0, y[start : start + _CHUNK].to(flat.device), part.double())
    counts = torch.bincount(y.to(flat.device), minlength=num_classes)[:num_classes]
    present = counts > 0
    means = sums / counts.clamp(min=1).unsqueeze(1).double()
    return means.cpu(), present.cpu()


def tilt_angles(
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    adv_pred: torch.Tensor,
    broken: torch.Tensor,
    centroids: torch.Tensor,
    present: torch.Tensor,
) -> list[float | None]:
    """Per-sample deviation angle in degrees between ``x_adv - x`` and ``mu[adv_pred] -
    mu[y]`` (see module doc); None where the sample is not ``broken`` (N,) bool, it did not
    change class, a centroid is missing, or the perturbation is zero."""
    d = (x_adv.detach().cpu().double() - x.detach().cpu().double()).reshape(len(x), -1)
    k = centroids.shape[0]
    yi, ji = y.cpu().long(), adv_pred.cpu().long()
    out: list[float | None] = []
    for i in range(len(x)):
        a, b = int(yi[i]), int(ji[i])
        if not bool(broken[i]) or a == b or not (0 <= a < k and 0 <= b < k):
            out.append(None)
            continue
        if not (bool(present[a]) and bool(present[b])):
            out.append(None)
            continue
        w = centroids[b] - centroids[a]
        nd, nw = float(d[i].norm()), float(w.norm())
        if nd == 0.0 or nw == 0.0:
            out.append(None)
            continue
        cos = max(-1.0, min(1.0, float(d[i] @ w) / (nd * nw)))
        out.append(round(math.degrees(math.acos(cos)), 4))
    return out


def per_sample_scaling(
    model: Model,
    x: Inputs,
    y: torch.Tensor,
    result: AttackResult,
    threat: ThreatModel,
    data_x: Any,
    data_y: torch.Tensor,
) -> dict[str, Any]:
    """What an attack cell records for the scaling metrics: ``adv_loss`` (per sample, the
    cross-entropy of the true label at ``x_adv``), ``tilt_deg`` (per sample, see
    :func:`tilt_angles`; centroids from the check's whole data ``data_x``/``data_y``) and
    ``eps_limit`` (the input box's diameter in the threat's norm, or None)."""
    out: dict[str, Any] = {"eps_limit": None}
    randomized = bool(getattr(model, "randomized", False))
    with torch.random.fork_rng(devices=[], enabled=randomized):
        if randomized:  # one seeded draw, leaving the caller's global stream as it was
            torch.manual_seed(0)
        logits = model.logits(result.x_adv).float()
    if logits.dim() != 2 or len(logits) != len(y) or y.dim() != 1:
        return out  # not one row of class scores per label: no cross-entropy to report
    loss = torch.nn.functional.cross_entropy(logits, y.to(logits.device), reduction="none")
    out["adv_loss"] = [round(float(v), 6) for v in loss.cpu()]
    x_adv = result.x_adv
    if not isinstance(x, torch.Tensor) or not isinstance(x_adv, torch.Tensor) or not len(y):
        return out  # multimodal inputs: no single input box, no single direction
    out["eps_limit"] = largest_meaningful_eps(threat.norm, model.bounds, x[0].numel())
    if (
        isinstance(data_x, torch.Tensor)
        and result.adv_pred is not None
        and x_adv.shape == x.shape
        and len(data_y)
    ):
        k = int(max(int(data_y.max()), int(result.adv_pred.max()), int(y.max()))) + 1
        centroids, present = class_centroids(data_x, data_y, k)
        broken = result.success.cpu() & result.clean_correct.cpu()
        out["tilt_deg"] = tilt_angles(x, x_adv, y, result.adv_pred, broken, centroids, present)
    return out


def check_scaling(
    adv_loss: Sequence[float | None] | None,
    tilt_deg: Sequence[float | None] | None,
    eps_limit: float | None,
) -> dict[str, Any]:
    """A check's scaling detail from its per-sample vectors: mean ``adversarial_loss``, median
    ``tilt_angle_deg`` over the samples that have one, ``tilt_samples`` and ``eps_limit``."""
    losses = [float(v) for v in adv_loss or () if v is not None and math.isfinite(v)]
    tilts = [float(v) for v in tilt_deg or () if v is not None]
    return {
        "adversarial_loss": round(sum(losses) / len(losses), 6) if losses else None,
        "tilt_angle_deg": round(statistics.median(tilts), 4) if tilts else None,
        "tilt_samples": len(tilts),
        "eps_limit": eps_limit,
    }

"""The ``smoothing`` verifier: certified l2 radii of the Gaussian-smoothed classifier.

Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019 (arXiv 1902.02918), CERTIFY (their Algorithm 1, code in
``robustbench_lite.core.smoothing``): ``n0`` selection draws pick the class ``cA``, ``n``
separate estimation draws give the Clopper-Pearson lower bound ``pA_lower`` at level
``1 - alpha``, the radius is ``sigma * Phi^-1(pA_lower)``, and it abstains when
``pA_lower <= 1/2``.

What a verdict means. The certificate is about the smoothed classifier ``g`` of the model, not
the model itself: sample ``i`` is VERIFIED under threat ``l2:eps`` when ``g``'s certified class is
the label and the certified radius exceeds ``eps``; this holds with probability at least
``1 - alpha`` over the noise draws (a Monte-Carlo certificate, not a proof about the network).
Everything else is UNKNOWN with its reason (abstained, wrong class, radius too small); the
verifier never reports FALSIFIED, because a wrong or unsure smoothed prediction is a statistical
statement with no concrete counterexample to re-check. Attacks on the model itself therefore
never refute these certificates (the suite's soundness cross-check skips them); attacks on ``g``
do (``robustbench_lite.defenses.smoothing.smooth_adv_l2`` judged by PREDICT).

Noise for sample ``x[i]`` comes from a generator seeded by ``seed`` and the bytes of ``x[i]``, so
a sample's certificate does not depend on which shard or batch it was in.

``stats`` carries per-sample ``prediction`` (-1: abstain), ``radius`` (input units), ``correct``
and ``p_lower``, and the ``radii`` at which reports give the certified accuracy.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from robustbench_lite.core.errors import ParameterError, UnsupportedThreatError
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import register_verifier
from robustbench_lite.core.smoothing import ABSTAIN, Certificate, certify, check_smoothing_params
from robustbench_lite.core.threat import ThreatModel, require_supported
from robustbench_lite.core.types import Goal, Norm, Status
from robustbench_lite.core.verifier import DEFAULT_TIMEOUT_S, VerificationResult, Verifier


@register_verifier("smoothing")
@dataclass(frozen=True)
class SmoothingVerifier(Verifier):
    """Randomized-smoothing certificates (Cohen et al. 2019, CERTIFY) under l2 threats.

    Args:
        sigma: noise standard deviation in input units (the base model should be trained
            with this noise).
        n0: selection draws per sample (the paper: 100).
        n: estimation draws per sample (the paper: 100,000; 10,000 for small models).
        alpha: failure probability of each certificate (the paper: 0.001).
        radii: l2 radii (input units) at which reports give the certified accuracy.
        batch_size: noisy copies per forward pass.
        seed: seed of the noise (mixed with each sample's bytes).

    Example::

        res = rbl.create_verifier("smoothing", sigma=0.25).verify(model, x, y, "l2:0.5")
        res.stats["radius"]  # certified radius per sample
    """

    sigma: float = 0.25
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    radii: tuple[float, ...] = (0.25, 0.5, 1.0)
    batch_size: int = 1000
    seed: int = 0

    supports: ClassVar[frozenset[tuple[Norm, Goal]]] = frozenset({(Norm.L2, Goal.UNTARGETED)})
    #: Values this verifier adds to a report: see ``robustbench_lite.report.certified``.
    metric_names: ClassVar[tuple[str, ...]] = ("certified_accuracy", "abstain_fraction")
    #: ``--quick`` runs: a tenth of the estimation draws (radii shrink: at most
    #: ``sigma * Phi^-1(alpha ** (1 / n))``, 0.62 at sigma 0.25 and n = 1,000).
    quick_params: ClassVar[Mapping[str, Any]] = {"n": 1000}
    #: Its certificates are about the smoothed classifier, not the model (the suite's soundness
    #: cross-check compares them only with attacks on the smoothed classifier).
    certifies_model: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_smoothing_params(
            sigma=self.sigma, n=self.n, n0=self.n0, alpha=self.alpha, batch_size=self.batch_size
        )
        radii = self.radii
        if isinstance(radii, (int, float)) and not isinstance(radii, bool):
            radii = (radii,)
        if not isinstance(radii, (list, tuple)) or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) and r >= 0
            for r in radii
        ):
            raise ParameterError(
                "radii", f"{radii!r} must be a list of l2 radii >= 0, e.g. [0.25, 0.5, 1.0]"
            )
        object.__setattr__(self, "radii", tuple(sorted({float(r) for r in radii})))

    def verify(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel | str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> VerificationResult:
        """Certify each ``x[i]`` (N, ...) with label ``y[i]``; VERIFIED when the smoothed class is
        ``y[i]`` with a certified radius above the threat's eps. ``timeout_s`` per sample: the
        samples left when ``N * timeout_s`` has passed are UNKNOWN ("timeout")."""
        threat = ThreatModel.parse(threat)
        require_supported("verifier", self.name, self.supports, threat)
        if not isinstance(x, torch.Tensor):
            raise UnsupportedThreatError(
                "verifier smoothing takes one input tensor (N, ...), not a mapping of modalities"
            )
        start = time.monotonic()
        deadline = start + timeout_s * int(x.shape[0])
        certs: list[Certificate | None] = []
        for i in range(int(x.shape[0])):
            if time.monotonic() > deadline:
                certs.append(None)
                continue
            certs.append(
                certify(
                    model,
                    x[i : i + 1],
                    sigma=self.sigma,
                    n0=self.n0,
                    n=self.n,
                    alpha=self.alpha,
                    batch_size=self.batch_size,
                    generator=self._generator(x[i]),
                )[0]
            )
        return self._result(certs, [int(v) for v in y.tolist()], threat.eps, start)

    def _generator(self, sample: torch.Tensor) -> torch.Generator:
        digest = hashlib.sha256(
            str(self.seed).encode() + sample.detach().cpu().contiguous().numpy().tobytes()
        ).digest()
        return torch.Generator(device=sample.device).manual_seed(
            int.from_bytes(digest[:8], "little") >> 1
        )

    def _result(
        self, certs: list[Certificate | None], y: list[int], eps: float, start: float
    ) -> VerificationResult:
        status: list[Status] = []
        reasons: dict[int, str] = {}
        for i, (cert, label) in enumerate(zip(certs, y)):
            if cert is None:
                status.append(Status.UNKNOWN)
                reasons[i] = "timeout"
            elif cert.prediction == ABSTAIN:
                status.append(Status.UNKNOWN)
                reasons[i] = f"abstained: pA lower bound {cert.p_lower:.4f} <= 0.5"
            elif cert.prediction != label:
                status.append(Status.UNKNOWN)
                reasons[i] = f"smoothed class {cert.prediction} is not the label {label}"
            elif not cert.radius > eps:
                status.append(Status.UNKNOWN)
                reasons[i] = f"certified radius {cert.radius:.4f} <= eps {eps:g}"
            else:
                status.append(Status.VERIFIED)
        stats: dict[str, Any] = {
            "certifies": f"Gaussian-smoothed classifier, sigma {self.sigma:g}",
            "prediction": [c.prediction if c else ABSTAIN for c in certs],
            "radius": [c.radius if c else 0.0 for c in certs],
            "correct": [
                bool(c is not None and c.prediction == label) for c, label in zip(certs, y)
            ],
            "p_lower": [c.p_lower if c else 0.0 for c in certs],
            "radii": list(self.radii),
            "sigma": self.sigma,
            "n0": self.n0,
            "n": self.n,
            "alpha": self.alpha,
        }
        return VerificationResult(
            tuple(status), reasons=reasons, elapsed_s=time.monotonic() - start, stats=stats
        )

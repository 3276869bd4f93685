"""ThreatModel: the set of allowed perturbations plus the attacker's goal.

``ThreatModel.parse("linf:8/255")``, ``"l2:0.5"``, ``"linf:0.1:targeted"``,
``"l2:1.0:top_k:5"`` or a YAML mapping ``{norm: l2, eps: 0.5, goal: top_k, k: 5}``. Norm and
goal names are case-insensitive (``Linf:0.1`` is ``linf:0.1``); the canonical name is lower case.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import torch

from robustbench_lite.core.errors import (
    DataError,
    ThreatSpecError,
    UnsupportedThreatError,
    did_you_mean,
)
from robustbench_lite.core.types import Bounds, Goal, Inputs, Norm

_THREAT_KEYS = ("norm", "eps", "goal", "k", "modality", "name")
_NUMBER = re.compile(r"^\s*[-+]?[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?\s*(/\s*[0-9]*\.?[0-9]+\s*)?$", re.I)
_EXPONENT = re.compile(r"e([-+]?[0-9]+)", re.I)
#: A modality names one entry of the model's input mapping: an identifier such as ``camera``.
_MODALITY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
#: The largest budget accepted: larger ones overflow float32 arithmetic (``eps**2``, random
#: starts in [-eps, eps]); 1e9 is far above any input range and any l0 element count.
MAX_EPS = 1e9
#: The longest threat text read (``"l2:1.0:top_k:5@camera"`` is 21 characters).
MAX_SPEC_CHARS = 256


def _shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def parse_eps(value: Any, *, where: str = "eps") -> float:
    """Parse an epsilon written as a number or a fraction string (``"8/255"``); must be >= 0.

    The value is read exactly (``Fraction``) before it becomes a float, so a budget that would
    overflow (``1e308``, ``10**400``: more than :data:`MAX_EPS`) or underflow to 0
    (``1e-400``) is refused instead of turning into inf or 0."""
    shown = _shown(value)
    if isinstance(value, bool):
        raise ThreatSpecError(f"{where}: {shown} is not a number; write e.g. 0.1 or 8/255")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ThreatSpecError(f"{where}: {shown} must be a finite number >= 0")
        exact = Fraction(value)
    elif isinstance(value, int):
        exact = Fraction(value)
    elif isinstance(value, str) and len(value) <= 100 and _NUMBER.match(value):
        num, _, den = value.partition("/")
        exponent = _EXPONENT.search(num)
        power = int(exponent.group(1)) if exponent else 0
        if abs(power) > 1000 and re.search(r"[1-9]", num[: exponent.start() if exponent else 0]):
            # decided without Fraction, which would build 10**power (seconds for 1e-999999999)
            raise ThreatSpecError((_too_large if power > 0 else _too_small)(where, shown))
        exact = Fraction(0) if abs(power) > 1000 else Fraction(num.strip())
        if den:
            if Fraction(den.strip()) == 0:
                raise ThreatSpecError(f"{where}: {shown} divides by zero; write e.g. 8/255")
            exact /= Fraction(den.strip())
    else:
        raise ThreatSpecError(f"{where}: {shown} is not a number; write e.g. 0.1 or 8/255")
    if exact < 0:
        raise ThreatSpecError(f"{where}: {shown} must be a finite number >= 0")
    if exact > MAX_EPS:
        raise ThreatSpecError(_too_large(where, shown))
    eps = float(exact)
    if eps == 0 and exact != 0:
        raise ThreatSpecError(_too_small(where, shown))
    return eps


def _too_large(where: str, shown: str) -> str:
    return (
        f"{where}: {shown} is too large for a budget (at most {MAX_EPS:g}, larger ones "
        "overflow); write e.g. 0.1 or 8/255"
    )


def _too_small(where: str, shown: str) -> str:
    return (
        f"{where}: {shown} is too small for a float and would silently become 0; "
        "write 0 for no perturbation, or a budget such as 1e-6"
    )


def _modality(value: Any, where: str) -> str | None:
    """A modality name (``camera``), or None for none; anything else is refused."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MODALITY.match(value):
        raise ThreatSpecError(
            f"{where}: modality {_shown(value)} is not a name; write the input entry that may "
            "change, e.g. 'linf:0.1@camera' (letters, digits, _ . -, at most 64 characters)"
        )
    return value


def _format_eps(eps: float) -> str:
    frac = Fraction(eps).limit_denominator(1000)
    if frac.denominator in (255, 256) and float(frac) == eps:
        return f"{frac.numerator}/{frac.denominator}"
    short = f"{eps:g}"
    return short if float(short) == eps else repr(float(eps))  # parse(spec()) round-trips exactly


def _enum(cls: type[Norm] | type[Goal], value: Any, where: str) -> Any:
    try:
        return cls(str(value).lower())
    except ValueError:
        names = [m.value for m in cls]
        raise ThreatSpecError(
            f"{where}: unknown {cls.__name__.lower()} {value!r}; choose one of {', '.join(names)}"
            + did_you_mean(str(value), names)
        ) from None


@dataclass(frozen=True)
class ThreatModel:
    """An allowed perturbation set around each input, and the attacker's goal.

    Args:
        norm: geometry of the set (``linf``, ``l2``, ``l1``, ``l0``, ``patch``, ``none``).
        eps: budget in ``norm`` units of the input space the attacks see (for ``l0``: the
            number of input elements that may change; for ``patch``: the fraction in [0, 1]
            of pixel locations (N, C, H, W: any channel) that may change, values free).
        goal: ``untargeted`` (any wrong class), ``targeted`` (the given class) or ``top_k``
            (the K highest logits are exactly the K targets, in order).
        k: number of ordered targets for ``top_k``.
        modality: for mapping inputs, the only entry that may change.
        name: display name; defaults to the canonical spec string.
    """

    norm: Norm
    eps: float = 0.0
    goal: Goal = Goal.UNTARGETED
    k: int = 1
    modality: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.norm, Norm):  # accept "linf" as well as Norm.LINF
            object.__setattr__(self, "norm", _enum(Norm, self.norm, "threat.norm"))
        if not isinstance(self.goal, Goal):
            object.__setattr__(self, "goal", _enum(Goal, self.goal, "threat.goal"))
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)):
            raise ThreatSpecError(
                f"eps={_shown(self.eps)} must be a number; use ThreatModel.parse for '8/255'"
            )
        if isinstance(self.eps, int) and self.eps > MAX_EPS:  # float() of 10**400 overflows
            raise ThreatSpecError(_too_large("eps", _shown(self.eps)))
        object.__setattr__(self, "eps", float(self.eps))
        if not math.isfinite(self.eps) or self.eps < 0:
            raise ThreatSpecError(f"eps={self.eps!r} must be a finite number >= 0")
        if self.eps > MAX_EPS:
            raise ThreatSpecError(_too_large("eps", _shown(self.eps)))
        object.__setattr__(self, "modality", _modality(self.modality or None, "threat"))
        if self.norm is Norm.PATCH and self.eps > 1:
            raise ThreatSpecError(
                f"patch eps={self.eps!r} is an area fraction and must be <= 1; "
                "write e.g. 'patch:0.04@camera' (at most 4 % of the pixel locations change)"
            )
        if self.k < 1:
            raise ThreatSpecError(f"k={self.k!r} must be >= 1")
        if self.goal is not Goal.TOP_K and self.k != 1:
            raise ThreatSpecError(f"k={self.k} is only meaningful with goal top_k")
        if not self.name:
            object.__setattr__(self, "name", self.spec())

    # ------------------------------------------------------------------ parsing
    def spec(self) -> str:
        """The canonical string form, e.g. ``"linf:8/255"`` or ``"l2:0.5:top_k:5"``."""
        s = (
            self.norm.value
            if self.norm is Norm.NONE
            else f"{self.norm.value}:{_format_eps(self.eps)}"
        )
        if self.goal is Goal.TOP_K:
            s += f":top_k:{self.k}"
        elif self.goal is Goal.TARGETED:
            s += ":targeted"
        if self.modality:
            s += f"@{self.modality}"
        return s

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any] | ThreatModel) -> ThreatModel:
        """Parse ``"linf:8/255"``, ``"l2:0.5:targeted"``, ``"l2:1:top_k:5@rgb"`` or a mapping."""
        if isinstance(spec, ThreatModel):
            return spec
        if isinstance(spec, Mapping):
            return cls._parse_mapping(spec)
        if not isinstance(spec, str):
            raise ThreatSpecError(
                f"threat {_shown(spec)} must be a string like 'linf:8/255' or a mapping"
            )
        if len(spec) > MAX_SPEC_CHARS:
            raise ThreatSpecError(
                f"threat {_shown(spec)} is {len(spec)} characters long (at most "
                f"{MAX_SPEC_CHARS}); the form is NORM:EPS[:GOAL[:K]][@MODALITY]"
            )
        text, at, modality = spec.strip().partition("@")
        if at:
            _modality(modality.strip(), f"threat {spec!r}")
            modality = modality.strip()
        parts = [p.strip() for p in text.split(":")]
        norm = _enum(Norm, parts[0], f"threat {spec!r}")
        rest = parts[1:]
        if norm is Norm.NONE:
            eps = 0.0
        elif not rest or not rest[0]:
            raise ThreatSpecError(
                f"threat {spec!r} has no epsilon; write it as '{norm.value}:EPS', e.g. 'linf:8/255'"
            )
        else:
            eps = parse_eps(rest.pop(0), where=f"threat {spec!r}")
        goal, k = Goal.UNTARGETED, 1
        if rest:
            goal = _enum(Goal, rest.pop(0), f"threat {spec!r}")
            if goal is Goal.TOP_K:
                if not rest:
                    raise ThreatSpecError(f"threat {spec!r}: top_k needs K, e.g. 'l2:1.0:top_k:5'")
                k = _parse_k(rest.pop(0), spec)
        if rest:
            raise ThreatSpecError(
                f"threat {spec!r}: unexpected trailing part {':'.join(rest)!r}; "
                "the form is NORM:EPS[:GOAL[:K]][@MODALITY]"
            )
        return cls(norm=norm, eps=eps, goal=goal, k=k, modality=modality or None)

    @classmethod
    def _parse_mapping(cls, spec: Mapping[str, Any]) -> ThreatModel:
        unknown = [key for key in spec if key not in _THREAT_KEYS]
        if unknown:
            raise ThreatSpecError(
                f"threat: unknown key {unknown[0]!r}; allowed keys are {', '.join(_THREAT_KEYS)}"
                + did_you_mean(str(unknown[0]), _THREAT_KEYS)
            )
        if "norm" not in spec:
            raise ThreatSpecError("threat: missing key 'norm' (linf, l2, l1, l0, none)")
        norm = _enum(Norm, spec["norm"], "threat.norm")
        if norm is not Norm.NONE and "eps" not in spec:
            raise ThreatSpecError(f"threat: norm {norm.value} needs 'eps', e.g. eps: 8/255")
        eps = parse_eps(spec.get("eps", 0.0), where="threat.eps")
        goal = _enum(Goal, spec.get("goal", "untargeted"), "threat.goal")
        k = _parse_k(spec.get("k", 1), spec)
        modality = _modality(spec.get("modality"), "threat.modality")
        name = spec.get("name", "")
        if not isinstance(name, (str, int, float)) or isinstance(name, bool):
            raise ThreatSpecError(f"threat.name: {_shown(name)} must be a string")
        return cls(norm=norm, eps=eps, goal=goal, k=k, modality=modality, name=str(name))

    def with_eps(self, eps: float) -> ThreatModel:
        """The same threat with another budget (and a fresh default name)."""
        return replace(self, eps=eps, name="")

    # ------------------------------------------------------------------ geometry
    def _perturbed(self, x: Inputs) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            if self.modality is not None:  # a modality the inputs do not have: never ignored
                raise UnsupportedThreatError(
                    f"threat {self.name} names modality {self.modality!r} but the model takes "
                    f"one input tensor, not a mapping of modalities; drop '@{self.modality}'"
                )
            return x
        if self.modality is None or self.modality not in x:
            raise UnsupportedThreatError(
                f"threat {self.name}: mapping inputs need a modality naming one of "
                f"{sorted(x)}; write e.g. '{self.spec()}@{sorted(x)[0]}'"
            )
        return x[self.modality]

    def _with_perturbed(self, x0: Inputs, value: torch.Tensor) -> Inputs:
        if isinstance(x0, torch.Tensor):
            return value
        out = dict(x0)
        assert self.modality is not None
        out[self.modality] = value
        return out

    def project(self, x0: Inputs, x: Inputs, bounds: Bounds) -> Inputs:
        """Project ``x`` onto the threat set around ``x0`` intersected with ``bounds``.

        For mapping inputs only ``modality`` may differ from ``x0``; other entries are reset.
        Shape: ``x0``, ``x`` (N, ...); returns the same shape and dtype.
        """
        a, b = self._perturbed(x0), self._perturbed(x)
        delta = (b - a).detach()
        lo, hi = bounds
        if self.norm is Norm.LINF:
            delta = delta.clamp(-self.eps, self.eps)
        elif self.norm is Norm.L2:
            delta = delta * _renorm_factor(delta.flatten(1).norm(p=2, dim=1), self.eps, delta)
        elif self.norm is Norm.L1:
            delta = _project_l1(delta, self.eps)
        elif self.norm is Norm.L0:
            delta = _project_l0(delta, int(self.eps))
        elif self.norm is Norm.PATCH:
            raise UnsupportedThreatError(
                "patch threats are projected by the patch attack itself; use a patch attack"
            )
        projected = (a + delta).clamp(lo, hi)
        return self._with_perturbed(x0, projected)

    def distance(self, x0: Inputs, x: Inputs) -> torch.Tensor:
        """Per-sample distance in this threat's norm, shape (N,) float."""
        delta = (self._perturbed(x) - self._perturbed(x0)).detach().flatten(1).double()
        if self.norm is Norm.LINF:
            return delta.abs().amax(dim=1) if delta.shape[1] else delta.new_zeros(delta.shape[0])
        if self.norm is Norm.L2:
            l2: torch.Tensor = delta.norm(p=2, dim=1)
            return l2
        if self.norm is Norm.L1:
            return delta.abs().sum(dim=1)
        if self.norm is Norm.L0:
            return (delta != 0).sum(dim=1).double()
        if self.norm is Norm.PATCH:
            return _changed_area(self._perturbed(x0), self._perturbed(x))
        return delta.new_zeros(delta.shape[0])

    def contains(
        self, x0: Inputs, x: Inputs, bounds: Bounds | None = None, *, atol: float = 1e-5
    ) -> torch.Tensor:
        """(N,) bool: ``x`` lies in the threat set around ``x0`` (and within ``bounds`` if given).

        ``atol`` absorbs float32 rounding of the projection (relative for l1/l2).
        """
        if not isinstance(x0, torch.Tensor) and (isinstance(x, torch.Tensor) or set(x) != set(x0)):
            got = "one tensor" if isinstance(x, torch.Tensor) else f"modalities {sorted(x)}"
            raise DataError(
                f"threat {self.name}: the clean inputs have modalities {sorted(x0)} but the candidate "
                f"has {got}; an attack must return the same modalities it was given"
            )
        ok = torch.ones(_n(x0), dtype=torch.bool, device=self._perturbed(x0).device)
        if self.norm is not Norm.NONE:
            dist = self.distance(x0, x)
            slack = atol if self.norm in (Norm.LINF, Norm.L0) else atol * max(1.0, self.eps)
            ok &= dist <= self.eps + slack
        if not isinstance(x0, torch.Tensor):
            assert not isinstance(x, torch.Tensor)  # checked on entry
            for key, value in x0.items():
                if key != self.modality:
                    ok &= (x[key] == value).flatten(1).all(dim=1)
        if bounds is not None:
            lo, hi = bounds
            p = self._perturbed(x).detach().flatten(1)
            ok &= (p >= lo - atol).all(dim=1) & (p <= hi + atol).all(dim=1)
        return ok

    # ------------------------------------------------------------------ goals
    def is_success(
        self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(N,) bool: the logits meet the goal.

        untargeted: argmax != y. targeted: argmax == target (N,). top_k: the K highest logits
        are exactly ``target`` (N, K) in that order, each strictly above the next (ties fail).
        """
        logits = logits.detach()
        if self.goal is Goal.UNTARGETED:
            return logits.argmax(dim=1) != y
        if target is None:
            raise UnsupportedThreatError(
                f"threat {self.name}: goal {self.goal.value} needs targets"
            )
        if self.goal is Goal.TARGETED:
            t = target.reshape(-1)
            picked = logits.gather(1, t[:, None])
            others = logits.scatter(1, t[:, None], float("-inf"))
            return picked[:, 0] > others.amax(dim=1)
        return ordered_topk_holds(logits, target)

    def sample_targets(
        self, y: torch.Tensor, num_classes: int, generator: torch.Generator
    ) -> torch.Tensor | None:
        """Random targets for targeted / top_k goals, never the true label.

        Returns (N,) for targeted, (N, K) distinct classes for top_k, None for untargeted.
        """
        if self.goal is Goal.UNTARGETED:
            return None
        k = self.k if self.goal is Goal.TOP_K else 1
        if k >= num_classes:
            raise UnsupportedThreatError(
                f"threat {self.name}: K={k} needs at least {k + 1} classes, the model has {num_classes}"
            )
        scores = torch.rand(y.shape[0], num_classes, generator=generator)
        scores[torch.arange(y.shape[0]), y.cpu()] = -1.0
        targets = scores.argsort(dim=1, descending=True)[:, :k].to(y.device)
        return targets[:, 0] if self.goal is Goal.TARGETED else targets


def ordered_topk_holds(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N,) bool: logits[t_1] > logits[t_2] > ... > logits[t_K] > every other logit."""
    picked = logits.gather(1, targets)
    ordered = (picked[:, :-1] > picked[:, 1:]).all(dim=1)
    others = logits.scatter(1, targets, float("-inf")).amax(dim=1)
    return ordered & (picked[:, -1] > others)


def _n(x: Inputs) -> int:
    from robustbench_lite.core.types import batch_size

    return batch_size(x)


def _parse_k(value: Any, spec: Any) -> int:
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise ThreatSpecError(f"threat {spec!r}: k={value!r} must be a positive integer") from None
    if k < 1 or str(k) != str(value).strip():
        raise ThreatSpecError(f"threat {spec!r}: k={value!r} must be a positive integer")
    return k


def _changed_area(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) float64 fraction of pixel locations where ``b`` differs from ``a`` in any channel.

    Images (N, C, H, W) count locations (H, W); other shapes count entries after dim 0.
    """
    diff = b.detach() != a.detach()
    changed = diff.any(dim=1).flatten(1) if diff.dim() == 4 else diff.reshape(diff.shape[0], -1)
    if changed.shape[1] == 0:
        return changed.new_zeros(changed.shape[0], dtype=torch.float64)
    return changed.double().mean(dim=1)


def _renorm_factor(norms: torch.Tensor, eps: float, like: torch.Tensor) -> torch.Tensor:
    factor = torch.clamp(eps / norms.clamp_min(1e-12), max=1.0)
    return factor.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def _project_l1(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection of each row onto the l1 ball of radius eps (Duchi et al. 2008)."""
    flat = delta.flatten(1)
    abs_ = flat.abs()
    inside = abs_.sum(dim=1) <= eps
    mu = abs_.sort(dim=1, descending=True).values
    cumsum = mu.cumsum(dim=1)
    ar = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=flat.dtype)
    cond = mu - (cumsum - eps) / ar > 0
    rho = cond.to(flat.dtype).mul(ar).argmax(dim=1, keepdim=True)
    theta = (cumsum.gather(1, rho) - eps) / (rho + 1).to(flat.dtype)
    projected = flat.sign() * (abs_ - theta).clamp_min(0)
    out = torch.where(inside[:, None], flat, projected)
    return out.reshape(delta.shape)


def _project_l0(delta: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest-magnitude entries of each row, zero the rest."""
    flat = delta.flatten(1)
    if k >= flat.shape[1]:
        return delta
    if k <= 0:
        return torch.zeros_like(delta)
    idx = flat.abs().topk(k, dim=1).indices
    keep = torch.zeros_like(flat, dtype=torch.bool).scatter(1, idx, True)
    return torch.where(keep, flat, torch.zeros_like(flat)).reshape(delta.shape)


def largest_meaningful_eps(norm: Norm, bounds: Bounds, dim: int) -> float | None:
    """The largest budget that is not the whole input box ``bounds`` for inputs of ``dim``
    elements: the box's diameter, ``width`` for linf, ``width * sqrt(dim)`` for l2 and
    ``width * dim`` for l1. None for other norms and for unbounded inputs."""
    width = float(bounds[1]) - float(bounds[0])
    if not math.isfinite(width) or dim < 1:
        return None
    if norm is Norm.LINF:
        return width
    if norm is Norm.L2:
        return width * math.sqrt(dim)
    if norm is Norm.L1:
        return width * dim
    return None


def require_meaningful_eps(threat: ThreatModel, bounds: Bounds, x: Inputs) -> None:
    """Raise :class:`ThreatSpecError` when ``threat.eps`` exceeds
    :func:`largest_meaningful_eps` for inputs like ``x`` (N, ...) in ``bounds``: such a threat
    set holds every input, so it measures nothing (``linf:30`` on [0, 1] data is a typo)."""
    if isinstance(x, torch.Tensor):
        sample = x
    elif threat.modality is not None and threat.modality in x:
        sample = x[threat.modality]
    else:  # the attack refuses a mapping without a matching modality itself
        return
    dim = math.prod(sample.shape[1:])
    limit = largest_meaningful_eps(threat.norm, bounds, dim)
    if limit is None or threat.eps <= limit * (1 + 1e-9):
        return
    lo, hi = (float(b) for b in bounds)
    how = {
        Norm.LINF: "the width of the input range",
        Norm.L2: f"width {hi - lo:g} x sqrt({dim} input elements)",
        Norm.L1: f"width {hi - lo:g} x {dim} input elements",
    }[threat.norm]
    raise ThreatSpecError(
        f"threat {threat.name}: eps {threat.eps:g} is larger than the input range [{lo:g}, "
        f"{hi:g}] allows; the largest meaningful {threat.norm.value} eps is {limit:.6g} "
        f"({how}), beyond it the threat set holds every input"
    )


def require_supported(
    kind: str, name: str, supports: Collection[tuple[Norm, Goal]] | None, threat: ThreatModel
) -> None:
    """Raise :class:`UnsupportedThreatError` unless ``(threat.norm, threat.goal)`` is in
    ``supports``. ``None`` means the component declares nothing (it checks threats itself);
    an empty set supports nothing. The one supports check of the package."""
    if supports is None or (threat.norm, threat.goal) in supports:
        return
    listed = ", ".join(sorted(f"{n.value}/{g.value}" for n, g in supports)) or "no threat"
    raise UnsupportedThreatError(
        f"{kind} {name} does not support {threat.norm.value}/{threat.goal.value} "
        f"(threat {threat.name}); it supports {listed}"
    )

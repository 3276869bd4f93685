"""Spiking networks: a LIF neuron with pluggable surrogate gradients, and surrogate twins.

The deployed ("real") spiking model fires with the Heaviside step; its input gradient is zero.
An attacker guesses a surrogate gradient (SG) and attacks a *twin* of the network whose neurons
use that SG in the backward pass only; :func:`with_surrogate` returns the model with that twin
in :attr:`Model.surrogate`, so gradient attacks use it while success is judged on the real model.

LIF neuron (spikingjelly ``LIFNode(tau=2, decay_input=True, v_threshold=1, v_reset=0)``, hard
reset, reset not detached), as in Lun et al., CVPR 2025 (arXiv 2503.03272), ``PDSG_LIFNode``::

    t = 1:  U_1 = X_1 / tau
    t > 1:  U_t = H_{t-1} + (X_t - (H_{t-1} - V_reset)) / tau
    S_t = Theta(U_t - V_th)          (x >= 0 -> 1)
    H_t = U_t (1 - S_t) + V_reset S_t

Surrogates (derivative of the spike w.r.t. x = U - V_th):

* ``atan``    (alpha/2) / (1 + (pi/2 alpha x)^2)       spikingjelly ATan, default alpha 2
* ``sigmoid`` alpha s(alpha x) (1 - s(alpha x))         spikingjelly Sigmoid, default alpha 4
* ``ste``     1 (straight-through, unclipped)
* ``pdsg``    N(x; sigma/2, sigma): exp(-((x - sigma/2) / (sqrt 2 sigma))^2) / (sqrt(2 pi) sigma),
  where sigma is the (unbiased) std of the membrane potentials U_1..U_t of the *current input*,
  taken with no gradient per channel (dim 2 of ``[T, N, C, ...]``; per feature for ``[T, N, F]``)
  over time steps <= t, the batch and the spatial dims. A sigma of 0 (or NaN, e.g. a single
  value) is replaced by 1. ``per_sample=True`` leaves the batch out of the statistics, which
  gives every sample the sigma it would get in a batch of one (used by the SDA attack).

Neuron state lives only inside one forward call, so it is reset between batches by design.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.errors import ParameterError, UnsupportedLayerError
from robustbench_lite.core.model import Model

SURROGATES = ("atan", "sigmoid", "ste", "pdsg")
DEFAULT_ALPHA = {"atan": 2.0, "sigmoid": 4.0, "ste": 1.0, "pdsg": 1.0}


@dataclass(frozen=True)
class Surrogate:
    """A surrogate gradient for the Heaviside spike.

    Args:
        kind: ``atan``, ``sigmoid``, ``ste`` or ``pdsg``.
        alpha: width parameter of ``atan`` / ``sigmoid`` (larger = narrower); unused otherwise.
        per_sample: ``pdsg`` only: compute sigma per sample instead of over the batch.
    """

    kind: str = "pdsg"
    alpha: float | None = None
    per_sample: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SURROGATES:
            raise ParameterError(
                "surrogate", f"{self.kind!r}: choose one of {', '.join(SURROGATES)}"
            )
        if self.alpha is None:
            object.__setattr__(self, "alpha", DEFAULT_ALPHA[self.kind])
        if not (
            isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0
        ):
            raise ParameterError("alpha", f"{self.alpha!r} must be a finite number > 0")

    @property
    def needs_history(self) -> bool:
        """True when the surrogate reads the membrane-potential history (PDSG)."""
        return self.kind == "pdsg"

    def label(self) -> str:
        """Short display form, e.g. ``atan(alpha=2)`` or ``pdsg``."""
        return self.kind if self.kind in ("pdsg", "ste") else f"{self.kind}(alpha={self.alpha:g})"

    def derivative(self, x: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        """dS/dx at ``x = U - V_th`` (same shape); ``sigma`` broadcasts against x for PDSG."""
        a = float(self.alpha)  # type: ignore[arg-type]
        if self.kind == "atan":
            return (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)
        if self.kind == "sigmoid":
            s = torch.sigmoid(a * x)
            return a * s * (1 - s)
        if self.kind == "ste":
            return torch.ones_like(x)
        assert sigma is not None
        return pdsg_derivative(x, sigma)


def pdsg_derivative(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian pdf with mean sigma/2 and std sigma at x (the PDSG backward)."""
    sigma = sigma.expand_as(x)
    return torch.exp(-(((x - 0.5 * sigma) / (math.sqrt(2) * sigma)) ** 2)) / (
        math.sqrt(2 * math.pi) * sigma
    )


def pdsg_sigma(history: torch.Tensor, *, per_sample: bool = False) -> torch.Tensor:
    """Per-channel std of the potentials ``history`` [t, N, C, ...] (no grad); 0/NaN -> 1.

    Returns a tensor that broadcasts against one step ``[N, C, ...]``: ``[1, C, 1, ...]``
    (``[N, C, 1, ...]`` with ``per_sample``).
    """
    with torch.no_grad():
        keep = {2} if history.dim() > 2 else {history.dim() - 1}
        if per_sample:
            keep.add(1)
        dims = tuple(d for d in range(history.dim()) if d not in keep)
        if math.prod(history.shape[d] for d in dims) < 2:  # one value: no spread, use 1
            return torch.ones_like(history.sum(dim=dims, keepdim=True).squeeze(0))
        sigma = history.std(dim=dims, keepdim=True).squeeze(0)
        bad = ~torch.isfinite(sigma) | (sigma == 0)
        return torch.where(bad, torch.ones_like(sigma), sigma)


class _Spike(torch.autograd.Function):
    """Heaviside forward, surrogate backward."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, surrogate: Surrogate, sigma: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.surrogate = surrogate
        ctx.save_for_backward(x, sigma if sigma is not None else torch.empty(0))
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, sigma = ctx.saved_tensors
        deriv = ctx.surrogate.derivative(x, sigma if sigma.numel() else None)
        return grad_out * deriv, None, None


class _Heaviside(torch.autograd.Function):
    """Heaviside forward, its true derivative (0) backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad_out)


def spike(
    x: torch.Tensor, surrogate: Surrogate | None, sigma: torch.Tensor | None = None
) -> torch.Tensor:
    """Theta(x) as float; with a surrogate, its backward is the surrogate's derivative.

    Without one (the real neuron) the backward is Theta's true derivative, 0 everywhere, so a
    plain gradient attack on an SNN runs and finds a zero gradient instead of failing.
    """
    if surrogate is None:
        if x.requires_grad:
            return _Heaviside.apply(x)
        return (x >= 0).to(x.dtype)
    return _Spike.apply(x, surrogate, sigma)


class LIF(nn.Module):
    """Multi-step LIF neurons with hard reset; input and output ``[T, N, ...]``.

    Args:
        tau: membrane time constant (decay_input form).
        v_threshold, v_reset: firing threshold and reset potential.
        surrogate: the backward of the spike; None is the real Heaviside neuron (zero gradient).
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__()
        self.tau, self.v_threshold, self.v_reset = tau, v_threshold, v_reset
        self.surrogate = surrogate

    def extra_repr(self) -> str:
        sg = self.surrogate.label() if self.surrogate is not None else "heaviside"
        return f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, surrogate={sg}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes [T, N, ...] (0/1 float) for input currents ``x`` [T, N, ...]."""
        sg = self.surrogate
        history: list[torch.Tensor] = []
        spikes: list[torch.Tensor] = []
        h: torch.Tensor | None = None
        for t in range(x.shape[0]):
            if h is None:
                u = (x[t] + self.v_reset) / self.tau
            else:
                u = h + (x[t] - (h - self.v_reset)) / self.tau
            sigma = None
            if sg is not None and sg.needs_history:
                history.append(u.detach())
                sigma = pdsg_sigma(torch.stack(history), per_sample=sg.per_sample)
            s = spike(u - self.v_threshold, sg, sigma)
            h = u * (1 - s) + self.v_reset * s
            spikes.append(s)
        return torch.stack(spikes)


class SpikingNet(nn.Module):
    """A feed-forward SNN: stateless layers applied per time step, LIF layers over time.

    Args:
        layers: modules in order; :class:`LIF` layers see ``[T, N, ...]``, the others see
            ``[T*N, ...]`` (so Conv2d / BatchNorm2d / Linear / Flatten / AvgPool2d all work).
        time_steps: T for ``encoding="direct"``.
        encoding: ``direct`` (static input [N, ...] repeated over T steps) or ``events``
            (input [N, T, ...] already split in time, e.g. binary event frames).

    Returns logits [N, classes] = the mean over time of the last layer's output.
    """

    def __init__(
        self, layers: list[nn.Module], *, time_steps: int = 4, encoding: str = "direct"
    ) -> None:
        super().__init__()
        if encoding not in ("direct", "events"):
            raise ParameterError("encoding", f"{encoding!r}: choose direct or events")
        self.layers = nn.ModuleList(layers)
        self.time_steps = time_steps
        self.encoding = encoding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoding == "direct":
            seq = x.unsqueeze(0).expand(self.time_steps, *x.shape)
        else:
            seq = x.transpose(0, 1)
        steps, n = seq.shape[0], seq.shape[1]
        for layer in self.layers:
            if isinstance(layer, LIF):
                seq = layer(seq)
            else:
                out = layer(seq.reshape(steps * n, *seq.shape[2:]))
                seq = out.reshape(steps, n, *out.shape[1:])
        return seq.mean(dim=0).reshape(n, -1)


def lif_layers(net: nn.Module) -> list[LIF]:
    """Every :class:`LIF` module of ``net``."""
    return [m for m in net.modules() if isinstance(m, LIF)]


def set_surrogate(net: nn.Module, surrogate: Surrogate | None) -> nn.Module:
    """Set the surrogate of every LIF layer of ``net`` in place; returns ``net``."""
    for layer in lif_layers(net):
        layer.surrogate = surrogate
    return net


def parse_surrogate(
    surrogate: Surrogate | str, alpha: float | None = None, *, per_sample: bool = False
) -> Surrogate:
    """A :class:`Surrogate` from a name (``"atan"``) or an instance (alpha/per_sample then ignored)."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    if not isinstance(surrogate, str):
        raise ParameterError(
            "surrogate", f"{surrogate!r}: pass a name ({', '.join(SURROGATES)}) or a Surrogate"
        )
    return Surrogate(surrogate.lower(), alpha, per_sample)


def with_surrogate(
    model: Model, surrogate: Surrogate | str = "pdsg", alpha: float | None = None
) -> Model:
    """``model`` with :attr:`Model.surrogate` set to a twin whose LIF layers use ``surrogate``.

    The twin is a deep copy of the network (weights snapshotted now); the real model keeps its
    Heaviside neurons and stays the judge of success. Raises :class:`UnsupportedLayerError` for
    a network without :class:`LIF` layers.
    """
    spec = parse_surrogate(surrogate, alpha)
    if not lif_layers(model.net):
        raise UnsupportedLayerError(
            f"{model.name} has no LIF layers; surrogate-gradient attacks need a spiking network "
            "built from robustbench_lite.worlds.snn.LIF (e.g. zoo:digits-snn)"
        )
    twin_net = set_surrogate(copy.deepcopy(model.net), spec)
    twin = replace(model, net=twin_net, surrogate=None, name=f"{model.name}~{spec.label()}")
    return replace(model, surrogate=twin)

"""Model: a network plus everything an attack must know about its input space."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robustbench_lite.core.errors import DataError, ModelOutputError, first_line
from robustbench_lite.core.types import Bounds, Inputs

if TYPE_CHECKING:
    from robustbench_lite.core.defense import Defense


@dataclass(frozen=True)
class AppliedDefense:
    """One input defense a :class:`Model` carries, as attacks and reports need to know it.

    Args:
        name: display name with its parameters, e.g. ``"median(3)"``.
        random: forward passes draw random numbers (e.g. random resize-and-pad); the model is
            then judged over repeated passes (:attr:`Model.draws`) and attacks average
            gradients over draws (EOT, Athalye et al. 2018).
        differentiable: False when gradients through the defense are useless (zero almost
            everywhere, e.g. rounding); the model's :attr:`Model.surrogate` then holds a BPDA
            approximation (Athalye, Carlini and Wagner 2018, arXiv 1802.00420).
    """

    name: str
    random: bool = False
    differentiable: bool = True


@dataclass(frozen=True)
class Model:
    """A classifier as the testbench sees it.

    Attacks work in the input space ``[bounds[0], bounds[1]]``; normalization by ``mean`` /
    ``std`` (per channel, dimension 1) happens inside :meth:`__call__`, never in attacks.

    Args:
        net: the PyTorch module; called in eval mode. Returns logits (N, num_classes).
        bounds: (lo, hi) of valid inputs.
        mean, std: per-channel normalization applied before ``net`` (tensor inputs only).
        surrogate: a gradient-only twin (e.g. an SNN with surrogate spikes, or a BPDA
            approximation). Attacks take gradients from :attr:`differentiable`; success is
            always judged on this model itself.
        name: display name (e.g. ``"zoo:digits-cnn"``).
        input_shape: shape of one sample, e.g. (1, 8, 8); used to check data before a run.
        num_classes: number of output classes, when known.
        default_threats: threat specs that ``robustbench-lite evaluate`` uses for this model.
        vocab: the vocabulary object of a text model whose inputs are token ids (N, L).
        meta: free-form provenance (zoo recipe, clean accuracy, checkpoint hash, ...).
        defenses: the input defenses wrapped into ``net`` (outermost last); see
            :class:`AppliedDefense`. A model with a random one is :attr:`randomized`.
        draws: forward passes over which a randomized model is judged (clean correctness and
            attack success); unused for deterministic models, which are judged on one pass.
        draw_fraction: a randomized model's prediction property (correct, or attack goal met)
            counts for a sample when it holds in at least this fraction of ``draws`` passes.
    """

    net: nn.Module
    bounds: Bounds = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    surrogate: Model | None = None
    name: str = "model"
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    default_threats: tuple[str, ...] = ()
    vocab: Any = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    defenses: tuple[AppliedDefense, ...] = ()
    draws: int = 10
    draw_fraction: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.bounds
        if not lo < hi:
            raise DataError(f"model bounds {self.bounds!r}: lo must be below hi, e.g. (0, 1)")
        if (self.mean is None) != (self.std is None):
            raise DataError("model normalization needs both mean and std, or neither")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise DataError(f"model std {self.std!r}: every entry must be > 0")
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
            raise DataError(f"model draws {self.draws!r}: pass an integer >= 1, e.g. 10")
        if not 0.0 < self.draw_fraction <= 1.0:
            raise DataError(
                f"model draw_fraction {self.draw_fraction!r}: pass a fraction in (0, 1], e.g. 0.5"
            )
        self.net.eval()

    # ------------------------------------------------------------------ forward
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Apply per-channel (dim 1) normalization, if any."""
        if self.mean is None or self.std is None:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
        return (x - mean) / std

    def __call__(self, x: Inputs) -> torch.Tensor:
        """Logits (N, num_classes) for inputs in ``bounds``; gradients flow if enabled."""
        if self.net.training:
            warnings.warn(
                f"{self.name}: the network is in training mode; calling .eval() on it",
                stacklevel=2,
            )
            self.net.eval()
        out: torch.Tensor = self.net(self.normalize(x) if isinstance(x, torch.Tensor) else x)
        return out

    def logits(self, x: Inputs, *, batch_size: int = 1024) -> torch.Tensor:
        """Logits without gradients, in batches, checked to be finite and 2-D."""
        from robustbench_lite.core.types import batch_size as count
        from robustbench_lite.core.types import index_inputs

        n = count(x)
        self.check_inputs(x)
        outs: list[torch.Tensor] = []
        with torch.no_grad():
            for start in range(0, n, batch_size):
                part = index_inputs(x, slice(start, start + batch_size))
                outs.append(self.checked(self(part), n=min(batch_size, n - start)))
        return torch.cat(outs) if outs else torch.empty(0)

    def check_inputs(self, x: Inputs) -> None:
        """Raise :class:`DataError` when ``x`` cannot be fed to this model (shape, bounds)."""
        if not isinstance(x, torch.Tensor):
            return
        if self.input_shape is not None and tuple(x.shape[1:]) != tuple(self.input_shape):
            raise DataError(
                f"data of shape {tuple(x.shape)} does not fit {self.name}, which takes "
                f"(N, {', '.join(map(str, self.input_shape))}); pass data of that shape"
            )
        if x.is_floating_point() and x.numel():
            if not torch.isfinite(x).all():
                bad = int((~torch.isfinite(x)).reshape(x.shape[0], -1).any(dim=1).sum())
                raise DataError(
                    f"data holds NaN or inf in {bad} of {x.shape[0]} samples; clean the data first"
                )
            lo, hi = self.bounds
            if float(x.min()) < lo - 1e-6 or float(x.max()) > hi + 1e-6:
                raise DataError(
                    f"data values span [{float(x.min()):.4g}, {float(x.max()):.4g}], outside {self.name}'s "
                    f"bounds {self.bounds}; scale the data or set the model's bounds"
                )
        if self.input_shape is None and x.shape[0]:
            try:
                with torch.no_grad():
                    self(x[:1])
            except RuntimeError as exc:
                first = first_line(exc)
                raise DataError(
                    f"data of shape {tuple(x.shape)} does not fit {self.name} ({first}); "
                    "pass data the model was built for"
                ) from None

    def checked(self, logits: torch.Tensor, *, n: int) -> torch.Tensor:
        """Raise :class:`ModelOutputError` unless ``logits`` is finite with shape (n, C)."""
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
            shape = (
                tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            )
            raise ModelOutputError(
                f"{self.name} returned output of shape {shape}; a classifier must return logits "
                f"of shape ({n}, num_classes)"
            )
        if not torch.isfinite(logits).all():
            bad = int((~torch.isfinite(logits)).any(dim=1).sum())
            raise ModelOutputError(
                f"{self.name} returned NaN or inf logits for {bad} of {n} samples; check the "
                "checkpoint and that inputs are in the model's bounds "
                f"{self.bounds} and normalization"
            )
        return logits

    # ------------------------------------------------------------------ views
    @property
    def randomized(self) -> bool:
        """True when a defense draws random numbers in the forward pass (judged over draws)."""
        return any(d.random for d in self.defenses)

    @property
    def differentiable(self) -> Model:
        """The model to take gradients from: the surrogate if there is one, else self."""
        return self.surrogate if self.surrogate is not None else self

    @property
    def device(self) -> torch.device:
        """The device of the network's first parameter (CPU for parameter-free nets)."""
        for p in self.net.parameters():
            return p.device
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> Model:
        """This model on ``device``; the caller's network never moves.

        ``nn.Module.to`` works in place, so the network (and surrogate) is deep-copied before it
        is moved; a model already entirely on ``device`` is returned as it is.
        """
        target = torch.device(device)
        surrogate = self.surrogate.to(target) if self.surrogate is not None else None
        net = self.net if _on_device(self.net, target) else copy.deepcopy(self.net).to(target)
        if net is self.net and surrogate is self.surrogate:
            return self
        return replace(self, net=net, surrogate=surrogate)

    def with_defense(self, defense: Defense) -> Model:
        """The model wrapped by an input defense (``defense.apply(self)``)."""
        return defense.apply(self)


def _on_device(net: nn.Module, device: torch.device) -> bool:
    """Whether every parameter and buffer of ``net`` is on ``device`` (index-less cuda matches any)."""
    tensors = [*net.parameters(), *net.buffers()]
    return all(
        t.device.type == device.type and (device.index is None or t.device.index == device.index)
        for t in tensors
    )

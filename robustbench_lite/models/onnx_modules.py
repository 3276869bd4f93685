"""The torch modules an imported ONNX network is built from.

Each ONNX node becomes one module; the whole network is an ``nn.Sequential`` when the nodes
form one chain and an :class:`OnnxGraph` otherwise. Standard layers are the torch ones
(``nn.Linear``, ``nn.Conv2d``, ``nn.BatchNorm1d``/``2d``, ``nn.AvgPool2d``, ``nn.Flatten``,
``nn.ReLU``); the few ONNX operations without a torch module are the small modules below.
Every ``forward`` here is a fixed sequence of torch calls decided at import time (no branch on
values, no shape arithmetic but ``x.shape[0]``), so ``torch.fx`` traces it and the verifier
(``verify/trace.py``) lowers each call exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class ConstOp(nn.Module):
    """``x (op) const`` for op in add/sub/mul/div, with ``const`` broadcast like ONNX.

    ``reverse=True`` computes ``const (op) x`` (only meaningful for sub; the importer refuses
    ``const / x``, which is not affine).
    """

    const: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, op: str, const: torch.Tensor, reverse: bool = False) -> None:
        super().__init__()
        self.op = op
        self.reverse = reverse
        self.register_buffer("const", const.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = (self.const, x) if self.reverse else (x, self.const)
        if self.op == "add":
            return a + b
        if self.op == "sub":
            return a - b
        if self.op == "mul":
            return a * b
        return a / b


class Reshape(nn.Module):
    """Reshape each sample to ``shape`` (the batch dimension is kept)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape((x.shape[0],) + self.shape)


class Combine(nn.Module):
    """``a + b`` or ``a - b`` of two network values of one rank (a residual connection)."""

    def __init__(self, op: str) -> None:
        super().__init__()
        if op not in ("add", "sub"):
            raise ValueError(f"Combine takes 'add' or 'sub', not {op!r}")
        self.op = op

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b if self.op == "add" else a - b


class Concat(nn.Module):
    """``torch.cat`` of network values along ``dim`` (never the batch dimension 0)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"Concat along dim {dim}: it must not be the batch dimension")
        self.dim = int(dim)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(list(xs), dim=self.dim)


@dataclass(frozen=True)
class Step:
    """One node of an :class:`OnnxGraph`: ``values[output] = layers[layer](*values[inputs])``;
    the values in ``drop`` are not needed afterwards."""

    layer: str
    inputs: tuple[str, ...]
    output: str
    drop: tuple[str, ...] = ()


class OnnxGraph(nn.Module):
    """A network with branches: the steps run in topological order over a dict of values.

    The op of every step was fixed at import time, so ``forward`` is the same sequence of
    module calls for every input and ``torch.fx`` traces it into a graph of those calls.

    When the last step is an ``nn.Linear`` (a ``Gemm`` or ``MatMul`` head), ``features`` and
    ``head`` split the network as ``head(features(x))`` for the attacks that need the logits
    linear in the features.
    """

    def __init__(
        self,
        layers: nn.ModuleDict,
        steps: tuple[Step, ...],
        input_name: str,
        output_name: str,
    ) -> None:
        super().__init__()
        self.layers = layers
        self.steps = tuple(steps)
        self.input_name = input_name
        self.output_name = output_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input_name: x}
        for step in self.steps:
            values[step.output] = self.layers[step.layer](*[values[n] for n in step.inputs])
            for name in step.drop:
                del values[name]
        return values[self.output_name]

    @property
    def head(self) -> nn.Linear:
        """The last layer, when it is an ``nn.Linear`` taking one value."""
        last = self.steps[-1] if self.steps else None
        layer = self.layers[last.layer] if last is not None else None
        if last is None or last.output != self.output_name or type(layer) is not nn.Linear:
            raise AttributeError("the network does not end with a linear layer")
        return layer

    @property
    def features(self) -> OnnxGraph:
        """The network up to the input of :attr:`head` (its layers shared, not copied)."""
        _ = self.head  # raises AttributeError when there is no linear head
        *body, last = self.steps
        wanted = {last.inputs[0]}
        for step in reversed(body):
            if step.output in wanted:
                wanted.update(step.inputs)
        kept = [
            Step(s.layer, s.inputs, s.output, tuple(d for d in s.drop if d != last.inputs[0]))
            for s in body
            if s.output in wanted
        ]
        return OnnxGraph(self.layers, tuple(kept), self.input_name, last.inputs[0])

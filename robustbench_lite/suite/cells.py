"""Cells: the unit of work of a suite run (one check on one shard of the data).

A cell's result is a small JSON-ready payload of per-sample vectors (indexed from the shard's
``start``), so cells are independent, can run in any process or machine, can be stored one
transaction each, and merge by sample index into the same report whatever ran them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from robustbench_lite.core.model import Model
from robustbench_lite.core.types import Inputs
from robustbench_lite.suite.model_spec import Check, DefenseSpec


@dataclass(frozen=True)
class Cell:
    """Check ``check_id`` on samples ``[start, stop)`` (shard number ``shard``)."""

    check_id: str
    shard: int
    start: int
    stop: int


@dataclass
class CellContext:
    """What every cell needs: the model, the data and the resolved checks (sent to workers once).
    ``x`` is a tensor (N, ...) or, for multimodal models, a mapping of named tensors (N, ...)."""

    model: Model
    x: Inputs
    y: torch.Tensor
    checks: dict[str, Check]
    seed: int
    _defended: dict[str, Model] = field(default_factory=dict, repr=False)

    def model_for(self, spec: DefenseSpec | None) -> Model:
        """The model, wrapped by the check's defense if it has one (built once per process)."""
        if spec is None:
            return self.model
        if spec.name not in self._defended:
            from robustbench_lite.core.registry import create_defense

            self._defended[spec.name] = create_defense(spec.use, **dict(spec.params)).apply(
                self.model
            )
        return self._defended[spec.name]


def cell_seed(seed: int, check_id: str, shard: int) -> int:
    """A 63-bit seed for one cell, independent of which executor or process runs it."""
    digest = hashlib.sha256(f"{seed}/{check_id}/{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1

"""A model meets its data: which data, and what the data says about the model's input space.

Every front door (``attack``, ``evaluate``, ``verify --model``, ``run``) does the same two steps
after :func:`robustbench_lite.models.loading.open_model`:

1. :func:`choose_data`: the data named on the command line or in the suite, else the model's
   own (a zoo entry's dataset with its options, a checkpoint's ``rbl_meta`` dataset), else
   ``digits``. When the named dataset is the model's own but without options, the model's
   options apply (``--data orl`` for ``zoo:orl-cnn`` means its 56x46 faces).
2. :func:`resolve_input_space`: what is still unknown about the model's input space is taken
   from that data: bounds and normalization from the dataset's declared
   :class:`~robustbench_lite.datasets.Domain`, the input shape from its samples, the default
   threats of ``evaluate`` from the dataset. Bounds that nothing gives stop the run with one
   line naming ``--bounds`` (exit 2). ``model.meta["input_space"]`` then records every value and
   its source; the reports carry it as ``model_domain``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from robustbench_lite.core.errors import CheckpointError
from robustbench_lite.core.model import Model
from robustbench_lite.core.types import Inputs
from robustbench_lite.datasets import dataset_domain, model_data

#: The data of a front door when neither the caller nor the model names any.
FALLBACK_DATA = "digits"


@dataclass(frozen=True)
class DataChoice:
    """The data a run uses: ``source`` (dataset name or ``npz:PATH``), its loader options, and
    who chose it (``"--data"``, ``"suite.yaml data"``, ``"zoo:orl-cnn"``, ``"default"``)."""

    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    chosen_by: str = "default"

    def record(self) -> dict[str, Any]:
        """JSON-friendly: ``{"source", "options", "chosen_by"}``."""
        return {
            "source": self.source,
            "options": {k: _listed(v) for k, v in self.options.items()},
            "chosen_by": self.chosen_by,
        }


def _listed(value: Any) -> Any:
    return [_listed(v) for v in value] if isinstance(value, (list, tuple)) else value


def choose_data(
    model: Model,
    given: str | None = None,
    *,
    given_by: str = "--data",
    options: Mapping[str, Any] | None = None,
) -> DataChoice:
    """The data for ``model``: ``given`` (with ``options``), else the model's own, else digits.

    A ``given`` dataset that is the model's own, without ``options``, takes the model's options.
    """
    own = model_data(model)
    own_by = model.meta.get("data", {}).get("declared_by") if own else None
    if given:
        opts = dict(options or {})
        if not opts and own is not None and own[0].replace("_", "-") == given.replace("_", "-"):
            opts = dict(own[1])
        return DataChoice(given, opts, given_by)
    if own is not None:
        return DataChoice(own[0], own[1], str(own_by or model.name))
    return DataChoice(FALLBACK_DATA, {}, "default (the model names no data)")


def _space(model: Model) -> dict[str, Any] | None:
    space = model.meta.get("input_space") if isinstance(model.meta, Mapping) else None
    return {k: dict(v) for k, v in space.items()} if isinstance(space, Mapping) else None


def resolve_input_space(
    model: Model, data: DataChoice | str | None, x: Inputs | None = None
) -> Model:
    """``model`` with what is still unknown taken from ``data`` (and its samples ``x``).

    Raises:
        CheckpointError: nothing gives the bounds (one line naming ``--bounds``).
    """
    if isinstance(data, str):
        data = DataChoice(data, {}, "data=")
    space = _space(model)
    if space is None:  # a Model built in Python: its fields are what its author gave
        label = "the Model object"
        space = {
            "bounds": {"value": list(model.bounds), "source": label},
            "normalization": {
                "value": None
                if model.mean is None
                else {"mean": list(model.mean), "std": list(model.std or ())},
                "source": label,
            },
        }
        if model.input_shape is not None:
            space["input_shape"] = {"value": list(model.input_shape), "source": label}
        if model.default_threats:
            space["default_threats"] = {"value": list(model.default_threats), "source": label}
    name = data.source if data is not None else None
    domain = dataset_domain(name) if name else None
    changes: dict[str, Any] = {}
    if space["bounds"].get("source") is None:
        if domain is None or domain.bounds is None:
            what = (
                f"the data {name} declares no input domain"
                if name
                else "no data is known to take them from"
            )
            raise CheckpointError(
                f"{model.name}: its input bounds are unknown (not given, not in the file's "
                f"rbl_meta, and {what}); pass --bounds LO,HI, e.g. --bounds 0,1 (suite: "
                "model: {bounds: [0, 1]}; Python: load_model(..., bounds=(0, 1)))"
            )
        changes["bounds"] = tuple(domain.bounds)
        space["bounds"] = {"value": list(domain.bounds), "source": f"dataset {name}"}
    if space["normalization"].get("source") is None:
        if domain is not None:
            if domain.mean is not None:
                changes["mean"], changes["std"] = domain.mean, domain.std
            space["normalization"] = {
                "value": None
                if domain.mean is None
                else {"mean": list(domain.mean), "std": list(domain.std or ())},
                "source": f"dataset {name}",
            }
        else:
            space["normalization"] = {
                "value": None,
                "source": "none given (no --mean/--std, rbl_meta or dataset normalization)",
            }
    if "input_shape" not in space and model.input_shape is None and x is not None:
        if isinstance(x, torch.Tensor) and x.dim() >= 2:
            changes["input_shape"] = tuple(int(d) for d in x.shape[1:])
            space["input_shape"] = {
                "value": list(changes["input_shape"]),
                "source": f"data {name}" if name else "data",
            }
    if not model.default_threats and domain is not None and domain.default_threats:
        changes["default_threats"] = tuple(domain.default_threats)
        space["default_threats"] = {
            "value": list(domain.default_threats),
            "source": f"dataset {name}",
        }
    if data is not None:
        space["data"] = data.record()
    return replace(model, **changes, meta={**model.meta, "input_space": space})


def input_space_record(model: Model) -> dict[str, Any]:
    """What the reports record as ``model_domain``: each item's value and source."""
    return _space(model) or {}


def load_model_data(
    model: Model,
    given: str | None = None,
    *,
    given_by: str = "--data",
    n: int | None = None,
    split: str = "test",
) -> tuple[Model, Inputs, torch.Tensor, DataChoice]:
    """``(model, x, y, choice)``: the data ``given`` (else the model's own, else digits),
    loaded, and the model's input space completed from it (what the CLI and the pytest fixture
    both do before attacking or verifying)."""
    from robustbench_lite.datasets import load_inputs

    choice = choose_data(model, given, given_by=given_by)
    x, y = load_inputs(choice.source, split=split, n=n, **dict(choice.options))
    return resolve_input_space(model, choice, x), x, y, choice

"""Data sources: ``rbl.load_data(spec, split=..., n=...) -> (x, y)``.

A spec is ``npz:PATH`` or the name of a module in :mod:`robustbench_lite.datasets` (``digits``,
``orl``, ...). Datasets that are not shipped inside an installed package live in the data
folder named by the ``RBL_DATA_DIR`` environment variable and are never copied elsewhere.
Each dataset module exposes ``load(split, **kw) -> (x, y)`` and declares its input domain as
``DOMAIN = Domain(bounds=..., default_threats=...)`` (:func:`dataset_domain`): the value range
of its samples, the normalization a model of it expects (none: models take the values as they
are), and the threats ``robustbench-lite evaluate`` measures by default. A model whose bounds
are not given (``--bounds``, the checkpoint's metadata) takes them from the data's domain.

A model may name its own data (a zoo entry's dataset and options, or a checkpoint's metadata):
``rbl.load_data(model)`` loads exactly that, e.g. ``zoo:orl-cnn``'s ORL faces at 56x46::

    model = rbl.load_model("zoo:orl-cnn")
    x, y = rbl.load_data(model, split="test", n=20)   # = rbl.load_data("orl", size=(56, 46))

Layer: content. May import ``core`` and ``worlds`` (the text vocabulary); never ``zoo``,
``models``, the harness or the faces.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from robustbench_lite.core.errors import DataError, DataFolderMissing, did_you_mean
from robustbench_lite.core.types import Inputs, index_inputs

if TYPE_CHECKING:
    from robustbench_lite.core.model import Model

DATA_DIR_ENV = "RBL_DATA_DIR"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Domain:
    """What a dataset declares about its samples (``DOMAIN`` in each dataset module).

    Args:
        bounds: (lo, hi) of every input value, or None when the dataset cannot say (token ids
            whose range depends on the vocabulary).
        mean, std: the per-channel normalization models of this data expect; None (both) when
            models take the values as they are.
        default_threats: the threats ``robustbench-lite evaluate`` measures for a model of this
            data that declares none of its own; empty when there is no sensible default.
    """

    bounds: tuple[float, float] | None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    default_threats: tuple[str, ...] = ()


def dataset_domain(spec: str) -> Domain | None:
    """The declared :class:`Domain` of dataset ``spec``; None for ``npz:PATH`` (an archive of
    arrays says nothing about its range) and for a dataset module that declares none."""
    if not isinstance(spec, str) or spec.startswith("npz:"):
        return None
    name = spec.replace("-", "_")
    if name not in [d.replace("-", "_") for d in list_datasets()]:
        return None
    domain = getattr(importlib.import_module(f"robustbench_lite.datasets.{name}"), "DOMAIN", None)
    return domain if isinstance(domain, Domain) else None


def model_data(model: Model) -> tuple[str, dict[str, Any]] | None:
    """``(dataset, options)`` a model names as its own data (``model.meta["data"]``, set by the
    zoo and by a checkpoint's metadata), or None."""
    data = model.meta.get("data") if isinstance(model.meta, Mapping) else None
    if not isinstance(data, Mapping) or not isinstance(data.get("source"), str):
        return None
    options = data.get("options") or {}
    return data["source"], dict(options) if isinstance(options, Mapping) else {}


def data_dir() -> Path | None:
    """The data folder from ``RBL_DATA_DIR``, or None when unset."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def data_folder(subfolder: str) -> Path:
    """``$RBL_DATA_DIR/subfolder``; raises :class:`DataFolderMissing` with the fix if absent."""
    root = data_dir()
    if root is None:
        raise DataFolderMissing(
            f"dataset folder {subfolder!r} needs the data folder: set {DATA_DIR_ENV} to the folder "
            f"that holds {subfolder}/ (e.g. export {DATA_DIR_ENV}=../shared/datasets)"
        )
    path = root / subfolder
    if not path.is_dir():
        raise DataFolderMissing(
            f"{path} does not exist; {DATA_DIR_ENV}={root} must hold the folder {subfolder}/"
        )
    return path


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_data` besides ``npz:PATH``."""
    return sorted(
        m.name.replace("_", "-")
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_")
    )


def check_split(split: str) -> None:
    """Raise :class:`DataError` unless ``split`` is ``train`` or ``test``."""
    if split not in SPLITS:
        raise DataError(f"split {split!r}: choose one of {', '.join(SPLITS)}")


def load_data(
    spec: str | Model, *, split: str = "test", n: int | None = None, **kw: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load ``(x, y)``: x (N, ...) float in the dataset's bounds (or token ids), y (N,) int64.

    The arguments are those of :func:`load_inputs`; a multimodal source (mapping inputs) is
    refused here with a pointer to :func:`load_inputs`, which loads every source.
    """
    x, y = load_inputs(spec, split=split, n=n, **kw)
    if not isinstance(x, torch.Tensor):
        raise DataError(
            f"data {getattr(spec, 'name', spec)} gives mapping inputs ({', '.join(sorted(x))}), "
            "not one tensor; load it with robustbench_lite.datasets.load_inputs"
        )
    return x, y


def load_inputs(
    spec: str | Model, *, split: str = "test", n: int | None = None, **kw: Any
) -> tuple[Inputs, torch.Tensor]:
    """Load ``(x, y)`` of any source: x a tensor (N, ...) as :func:`load_data` gives it, or for
    multimodal sources (``fusion-world``, ``kitti``, an ``npz`` archive of named arrays such as
    ``camera`` and ``lidar`` instead of ``x``) a mapping of named tensors, (N, ...) each
    (:data:`robustbench_lite.core.types.Inputs`); y (N,) int64. A source whose loader takes
    ``n`` itself (procedural scenes) generates exactly ``n`` samples.

    Args:
        spec: ``"digits"``, ``"orl"``, ``"npz:path/to/file.npz"`` (arrays ``x`` and ``y``), ...,
            or a :class:`Model` that names its data (a zoo model, a checkpoint with metadata):
            ``rbl.load_data(rbl.load_model("zoo:orl-cnn"))`` gives the 56x46 ORL faces it was
            trained on; ``**kw`` then override that data's own options.
        split: ``"train"`` or ``"test"`` (fixed, seeded split per dataset).
        n: keep the first ``n`` samples; more than the split holds is an error.
    """
    from robustbench_lite.core.model import Model

    if isinstance(spec, Model):
        named = model_data(spec)
        if named is None:
            raise DataError(
                f"{spec.name} names no data of its own; pass a dataset name "
                f"({', '.join(list_datasets())}) or npz:PATH"
            )
        return load_inputs(named[0], split=split, n=n, **{**named[1], **kw})
    if not isinstance(spec, str) or not spec:
        raise DataError(
            f"data spec {spec!r}: write a dataset name ({', '.join(list_datasets())}) or npz:PATH"
        )
    if spec.startswith("npz:"):
        from robustbench_lite.datasets import npz

        x, y = npz.load_npz(Path(spec[4:]))
    else:
        check_split(split)
        name = spec.replace("-", "_")
        if name not in [d.replace("-", "_") for d in list_datasets()]:
            raise DataError(
                f"unknown dataset {spec!r}{did_you_mean(spec, list_datasets())}; "
                f"choose one of {', '.join(list_datasets())} or npz:PATH"
            )
        module = importlib.import_module(f"robustbench_lite.datasets.{name}")
        _check_options(spec, module.load, kw)
        if n is not None and "n" in inspect.signature(module.load).parameters:
            kw = {**kw, "n": _checked_n(n)}  # generated: exactly n samples, never a prefix
        x, y = module.load(split=split, **kw)
    return take(x, y, n, spec=spec)


def _check_options(spec: str, loader: Any, kw: dict[str, Any]) -> None:
    """Raise :class:`DataError` for a keyword option the dataset's loader does not take."""
    params = inspect.signature(loader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [name for name in params if name not in ("split", "n")]
    for key in kw:
        if key not in known:
            takes = f"it takes {', '.join(known)}" if known else "it takes no options"
            raise DataError(
                f"dataset {spec}: unknown option {key!r}{did_you_mean(key, known)}; {takes}"
            )


def take(
    x: Inputs, y: torch.Tensor, n: int | None, *, spec: str = "data"
) -> tuple[Inputs, torch.Tensor]:
    """The first ``n`` samples (of a tensor or of every entry of a mapping); :class:`DataError`
    if ``n`` is not in 1..len."""
    if n is None:
        return x, y
    n = _checked_n(n)
    if n > len(y):
        raise DataError(f"n={n} is larger than {spec} ({len(y)} samples); use n <= {len(y)}")
    return index_inputs(x, slice(0, n)), y[:n]


def _checked_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"n={n!r} must be a positive integer")
    return n

"""The embedded model zoo: ``rbl.load_model("zoo:NAME")``.

Each entry is a recipe (architecture, data, optimiser, seed) that trains deterministically on
first use and is cached under ``$RBL_CACHE_DIR`` (default ``$XDG_CACHE_HOME/robustbench_lite``),
keyed by a hash of the recipe. The cache is only a cache: when it cannot be written (read-only,
full, ``RBL_CACHE_DIR`` or ``HOME`` a file) the model is trained in memory, one warning names
``RBL_CACHE_DIR``, and the run goes on. Entries are defined in the modules of this package
(``digits.py``, ...) with :func:`register_zoo_model`; a third-party package adds entries
through the ``robustbench_lite.zoo`` entry-point group (a module that calls it on import).

Layer: content. May import ``core``, ``datasets`` and ``worlds``; never ``models``, the harness
or the faces.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.errors import RegistryError, RobustbenchLiteError
from robustbench_lite.core.io import CACHE_ENV, atomic_write_bytes, cache_dir, recipe_hash
from robustbench_lite.core.model import Model
from robustbench_lite.core.registry import Catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model's recipe.

    Args:
        name: zoo name, used as ``zoo:NAME``.
        description: one line for ``robustbench-lite zoo list``.
        build: returns the untrained network (deterministic given the global seed).
        train: trains the network in place; returns metrics such as ``clean_accuracy``.
        recipe: everything that determines the weights; its hash keys the cache.
        model_kwargs: passed to :class:`Model` (bounds, input_shape, num_classes, ...).
        finalize: optional ``Model -> Model`` applied to the loaded model (e.g. to attach a
            surrogate-gradient twin to a spiking network); not part of the cache key.
        data: the dataset the model was trained on (a name for ``rbl.load_data``); it is the
            model's default data in every front door (``attack``, ``evaluate``, ``verify``,
            ``run`` of a suite without data) and what ``rbl.load_data(model)`` loads.
        data_options: that dataset's options, e.g. ``{"size": (56, 46)}`` for ORL.
    """

    name: str
    description: str
    build: Callable[[], nn.Module]
    train: Callable[[nn.Module], Mapping[str, Any]]
    recipe: Mapping[str, Any]
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    finalize: Callable[[Model], Model] | None = None
    data: str | None = None
    data_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def recipe_hash(self) -> str:
        """12 hex digits of the SHA-256 of the recipe (sorted JSON)."""
        return recipe_hash(self.recipe)


#: The zoo's catalog: built-in entries (this package's modules) and third-party ones come through
#: the ``robustbench_lite.zoo`` entry-point group.
ZOO: Catalog[ZooEntry] = Catalog(
    "zoo model", "robustbench_lite.zoo", hint="see `robustbench-lite zoo list`"
)


def register_zoo_model(entry: ZooEntry) -> ZooEntry:
    """Add ``entry`` to the zoo (names must be unique; the same recipe may be added again)."""
    if entry.name in ZOO.names() and ZOO.get(entry.name).recipe != entry.recipe:
        raise RegistryError(f"zoo model {entry.name!r} is already registered with another recipe")
    return ZOO.add(entry.name, entry, replace=True)


def zoo_names() -> list[str]:
    """Sorted names of all zoo models."""
    return ZOO.names()


def zoo_entry(name: str) -> ZooEntry:
    """The recipe named ``name``; unknown names suggest the closest ones."""
    return ZOO.get(name)


#: Cache folders a failed write was already reported for (one warning per folder and process).
_WARNED: set[str] = set()


def _paths(entry: ZooEntry) -> tuple[Path, Path] | None:
    """The cached weights and metadata of ``entry``; None when there is no usable cache folder
    (``cache_dir`` refused it: a file where the folder should be, no home folder)."""
    try:
        stem = cache_dir() / "zoo" / f"{entry.name}-{entry.recipe_hash}"
    except RobustbenchLiteError as exc:
        _warn_once("cache", f"{exc}; zoo models are trained in memory and not kept")
        return None
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s", message)


def cached_info(name: str) -> Mapping[str, Any] | None:
    """The recorded metrics of a trained zoo model, or None if it was never trained here (or
    its cached metadata cannot be read)."""
    paths = _paths(zoo_entry(name))
    if paths is None:
        return None
    try:
        info = json.loads(paths[1].read_text()) if paths[1].is_file() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _write_cache(
    name: str, weights_path: Path, meta_path: Path, weights: bytes, meta: bytes
) -> None:
    """Keep a trained model in the cache; a cache that cannot be written (read-only, full, a
    file in the way) is reported once per folder and the model stays in memory only."""
    try:
        atomic_write_bytes(weights_path, weights)
        atomic_write_bytes(meta_path, meta)
    except OSError as exc:  # OutputPathError too: it is an OSError with a message of ours
        folder = weights_path.parent
        why = str(exc) if isinstance(exc, RobustbenchLiteError) else f"{exc.strerror or exc}"
        _warn_once(
            str(folder),
            f"cannot write the zoo cache {folder} ({why}); "
            f"zoo:{name} is used from memory and trained again next time; set {CACHE_ENV} to a "
            "writable folder to keep trained models",
        )


def _read_cache(net: nn.Module, weights_path: Path, meta_path: Path) -> dict[str, Any] | None:
    """Load cached weights into ``net`` and return their metadata; None if absent or unreadable."""
    try:
        if not (weights_path.is_file() and meta_path.is_file()):
            return None
    except OSError:
        return None
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        meta = json.loads(meta_path.read_text())
    except Exception as exc:  # a corrupt cache entry is rebuilt, never fatal
        log.warning("zoo cache %s is unreadable (%s); retraining", weights_path, exc)
        return None
    return meta if isinstance(meta, dict) else None


def load_zoo_model(name: str, *, retrain: bool = False) -> Model:
    """The trained zoo model ``name``, training (and caching) it on first use."""
    import io

    entry = zoo_entry(name)
    paths = _paths(entry)
    with torch.random.fork_rng():  # building must not consume the caller's random stream
        net = entry.build()
    cached = None if retrain or paths is None else _read_cache(net, *paths)
    if cached is not None:
        meta = cached
    else:
        log.info("training zoo model %s (recipe %s)", name, entry.recipe_hash)
        seed = int(entry.recipe.get("seed", 0))
        start = time.perf_counter()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = entry.build()
            metrics = dict(entry.train(net))
        meta = {
            "name": name,
            "recipe": dict(entry.recipe),
            "recipe_hash": entry.recipe_hash,
            "train_time_s": round(time.perf_counter() - start, 2),
            "torch": torch.__version__,
            **metrics,
        }
        if paths is not None:
            buffer = io.BytesIO()
            torch.save(net.state_dict(), buffer)
            meta_bytes = json.dumps(meta, indent=2, default=str).encode()
            _write_cache(name, *paths, buffer.getvalue(), meta_bytes)
    net.eval()
    kwargs = dict(entry.model_kwargs)
    meta = {**meta, "input_space": _input_space(name, kwargs)}
    if entry.data is not None:
        meta["data"] = {"source": entry.data, "options": dict(entry.data_options)}
    model = Model(net=net, name=f"zoo:{name}", meta=meta, **kwargs)
    return entry.finalize(model) if entry.finalize is not None else model


def _input_space(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Where a zoo model's input space comes from: its entry (bounds, normalization, shape)."""
    label = f"zoo:{name}"
    space: dict[str, Any] = {
        "bounds": {"value": list(kwargs.get("bounds", (0.0, 1.0))), "source": label},
        "normalization": {
            "value": (
                {"mean": list(kwargs["mean"]), "std": list(kwargs["std"])}
                if kwargs.get("mean") is not None
                else None
            ),
            "source": label,
        },
    }
    if kwargs.get("input_shape") is not None:
        space["input_shape"] = {"value": list(kwargs["input_shape"]), "source": label}
    if kwargs.get("default_threats"):
        space["default_threats"] = {"value": list(kwargs["default_threats"]), "source": label}
    return space


def __getattr__(attr: str) -> Any:
    """Lazy access to builder functions defined in zoo modules (e.g. ``text_classifier``)."""
    from robustbench_lite.core.registry import import_submodules

    for mod in import_submodules(__name__, __path__):
        if attr in getattr(mod, "__all__", ()):
            return getattr(mod, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")

"""The embedded model zoo: ``rbl.load_model("zoo:NAME")``.

Each entry is a recipe (architecture, data, optimiser, seed) that trains deterministically on
first use and is cached under ``$RBL_CACHE_DIR`` (default ``$XDG_CACHE_HOME/robustbench_lite``),
keyed by a hash of the recipe. Entries are defined in the modules of this package
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

from robustbench_lite.core.errors import RegistryError
from robustbench_lite.core.io import atomic_write_bytes, cache_dir, recipe_hash
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
    """

    name: str
    description: str
    build: Callable[[], nn.Module]
    train: Callable[[nn.Module], Mapping[str, Any]]
    recipe: Mapping[str, Any]
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    finalize: Callable[[Model], Model] | None = None

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


def _paths(entry: ZooEntry) -> tuple[Path, Path]:
    stem = cache_dir() / "zoo" / f"{entry.name}-{entry.recipe_hash}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def cached_info(name: str) -> Mapping[str, Any] | None:
    """The recorded metrics of a trained zoo model, or None if it was never trained here."""
    _, meta_path = _paths(zoo_entry(name))
    if not meta_path.is_file():
        return None
    info: Mapping[str, Any] = json.loads(meta_path.read_text())
    return info


def _read_cache(net: nn.Module, weights_path: Path, meta_path: Path) -> dict[str, Any] | None:
    """Load cached weights into ``net`` and return their metadata; None if absent or unreadable."""
    if not (weights_path.is_file() and meta_path.is_file()):
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
    weights_path, meta_path = _paths(entry)
    with torch.random.fork_rng():  # building must not consume the caller's random stream
        net = entry.build()
    cached = None if retrain else _read_cache(net, weights_path, meta_path)
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
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        atomic_write_bytes(weights_path, buffer.getvalue())
        atomic_write_bytes(meta_path, json.dumps(meta, indent=2, default=str).encode())
    net.eval()
    model = Model(net=net, name=f"zoo:{name}", meta=meta, **dict(entry.model_kwargs))
    return entry.finalize(model) if entry.finalize is not None else model


def __getattr__(attr: str) -> Any:
    """Lazy access to builder functions defined in zoo modules (e.g. ``text_classifier``)."""
    from robustbench_lite.core.registry import import_submodules

    for mod in import_submodules(__name__, __path__):
        if attr in getattr(mod, "__all__", ()):
            return getattr(mod, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")

"""``rbl.load_model(spec)``: zoo names, state_dict checkpoints, TorchScript, ``torch.export``
(``.pt2``) and ONNX files.

Checkpoints are read with ``torch.load(weights_only=True)``. A checkpoint that needs full
unpickling, and a TorchScript archive (which runs its own scripted code while loading), are
refused unless the caller passes ``trust_checkpoint=True`` (CLI ``--trust-checkpoint``); a file
is recognised by its pickle opcodes and zip layout, without running anything. A ``.pt2`` archive
is checked to be a plain graph before ``torch.export.load`` reads it, and then needs no trust
(see :mod:`robustbench_lite.models.exported`). ``arch`` must name an ``nn.Module`` subclass or a
function annotated to return one: nothing else is called. A checkpoint archive whose members
would inflate past a cap (see :func:`max_checkpoint_bytes`) is refused before it is inflated.

The input space is never guessed. Each of bounds, normalization (mean/std) and input shape
comes from, in order: what the caller gives (``--bounds``, a suite's ``model:`` block,
``load_model(bounds=...)``), the file's metadata (``rbl_meta``, see
:mod:`robustbench_lite.models.meta`), then the data (:mod:`robustbench_lite.models.domain`:
the dataset's declared domain, the shape of its samples). ``model.meta["input_space"]`` records
each value and where it came from; what is still unknown after loading is filled from the data
by every front door, which stops (exit 2, naming ``--bounds``) when nothing gives the bounds.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import logging
import os
import pickle
import pickletools
import sys
import typing
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.errors import CheckpointError, did_you_mean, first_line
from robustbench_lite.core.io import not_a_file, zip_inflated_bytes
from robustbench_lite.core.model import Model

log = logging.getLogger(__name__)

_MODEL_KEYS = ("bounds", "mean", "std", "input_shape", "num_classes", "default_threats", "name")
#: Environment variable that sets the cap (bytes) on a checkpoint archive's inflated size.
MAX_BYTES_ENV = "RBL_MAX_CHECKPOINT_BYTES"
#: Without an architecture to size it from: the cap on a checkpoint archive's inflated size.
DEFAULT_MAX_BYTES = 4 << 30
#: With an architecture: this many times its parameter and buffer bytes (float64 copies,
#: optimizer state beside the weights), but never less than ``MIN_MAX_BYTES``.
ARCH_FACTOR = 8
MIN_MAX_BYTES = 256 << 20
#: The bounds a model holds while they are unknown (``input_space.bounds.source`` is None).
PENDING_BOUNDS = (float("-inf"), float("inf"))
_FLAGS = {
    "bounds": "--bounds",
    "normalization": "--mean/--std",
    "input_shape": "--input-shape",
    "num_classes": "--num-classes",
    "default_threats": "--threat",
}

#: The parts of a model's input space, each with the keyword arguments that set it.
SPACE_ITEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bounds", ("bounds",)),
    ("normalization", ("mean", "std")),
    ("input_shape", ("input_shape",)),
    ("num_classes", ("num_classes",)),
    ("default_threats", ("default_threats",)),
)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (identifies a checkpoint in reports and the results store)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(
    spec: str | Path | Model,
    *,
    arch: str | None = None,
    trust_checkpoint: bool = False,
    data: str | None = None,
    **kw: Any,
) -> Model:
    """Load a model from ``spec``.

    Args:
        spec: ``"zoo:NAME"``, a state_dict checkpoint (needs ``arch``), a TorchScript file, a
            ``torch.export`` ``.pt2`` file or an ``.onnx`` file. A :class:`Model` is returned
            unchanged.
        arch: ``"package.module:attr"``, a class or factory called with no arguments whose
            result the state_dict is loaded into. Never evaluated as code.
        trust_checkpoint: allow full unpickling for checkpoints that need it. Only for files
            whose source you trust: unpickling can run arbitrary code.
        data: a dataset name whose declared domain fills what neither ``**kw`` nor the file's
            metadata gives (bounds, normalization). Without it, unknown bounds stay unknown
            (``model.bounds`` is (-inf, inf), a warning is logged) until a front door
            (``run_suite``, the CLI) fills them from its data.
        **kw: :class:`Model` fields (bounds, mean, std, input_shape, num_classes, name, ...);
            they win over the file's metadata.
    """
    model = open_model(spec, arch=arch, trust_checkpoint=trust_checkpoint, **kw)
    if data is not None:
        from robustbench_lite.models.domain import resolve_input_space

        return resolve_input_space(model, data)
    if bounds_pending(model):
        log.warning(
            "%s: its input bounds are unknown (no bounds=, no rbl_meta in the file), so attacks "
            "would not clip inputs; pass bounds=(lo, hi) or data=NAME to load_model",
            model.name,
        )
    return model


def bounds_pending(model: Model) -> bool:
    """True while nothing has given ``model`` its bounds (see :func:`open_model`)."""
    space = model.meta.get("input_space") if hasattr(model.meta, "get") else None
    return isinstance(space, dict) and space.get("bounds", {}).get("source") is None


def open_model(
    spec: str | Path | Model,
    *,
    arch: str | None = None,
    trust_checkpoint: bool = False,
    given_by: str = "python",
    arch_paths: Sequence[str | Path] = (),
    **kw: Any,
) -> Model:
    """The model of ``spec`` with what the caller and the file say about its input space.

    What neither says stays pending (``meta["input_space"][item]["source"]`` is None; pending
    bounds are (-inf, inf)) for :func:`robustbench_lite.models.domain.resolve_input_space`.

    Args:
        given_by: who gave ``**kw``, for the record: ``"cli"`` (``--bounds``), ``"python"``
            (``load_model(bounds=...)``) or a suite's source (``suite.yaml``).
        arch_paths: folders searched first for ``arch``'s module (the current folder for the
            CLI, the suite file's folder for a suite).
    """
    if isinstance(spec, Model):
        return spec
    unknown = [k for k in kw if k not in _MODEL_KEYS]
    if unknown:
        raise CheckpointError(
            f"load_model: unknown option {unknown[0]!r}; allowed: {', '.join(_MODEL_KEYS)}"
        )
    given = {k: v for k, v in kw.items() if v is not None}
    text = str(spec)
    if text.startswith("zoo:"):
        from robustbench_lite.zoo import load_zoo_model

        return _override(load_zoo_model(text[4:]), given, given_by)
    path = Path(text).expanduser()
    problem = not_a_file(path)
    if problem:
        hint = " (zoo models are written zoo:NAME)" if ":" not in text and "/" not in text else ""
        raise CheckpointError(f"model file {text} {problem}{hint}")
    from robustbench_lite.models.exported import is_exported_program

    if path.suffix.lower() == ".onnx":
        from robustbench_lite.models.meta import onnx_meta

        return _with_space(path, "onnx", onnx_meta(path), given, given_by, None)
    if path.suffix.lower() == ".pt2" or is_exported_program(path):
        if not is_exported_program(path):
            raise CheckpointError(
                f"{path} is not a torch.export archive (no archive_format 'pt2' and models/ "
                "member); save the program with torch.export.save(torch.export.export(net, "
                "(x,)), path)"
            )
        if arch is not None:
            raise CheckpointError(
                f"{path} is a torch.export program, which carries its own graph; drop --arch"
            )
        return _with_space(path, "pt2", None, given, given_by, None, trust=trust_checkpoint)
    if arch is None:
        net = _load_torchscript(path, trust_checkpoint=trust_checkpoint)
        from robustbench_lite.models.meta import zip_meta

        return _with_space(path, "torchscript", zip_meta(path, "TorchScript"), given, given_by, net)
    net, file_meta = _load_state_dict_into(path, arch, trust_checkpoint, arch_paths)
    return _with_space(path, "state_dict", file_meta, given, given_by, net, arch=arch)


def _label(given_by: str, item: str) -> str:
    if given_by == "cli":
        return _FLAGS[item]
    if given_by == "python":
        keys = "mean=, std=" if item == "normalization" else f"{item}="
        return f"load_model({keys})"
    keys = "mean/std" if item == "normalization" else item
    return f"{given_by} model.{keys}"


def _with_space(
    path: Path,
    fmt: str,
    file_meta: dict[str, Any] | None,
    given: dict[str, Any],
    given_by: str,
    net: Any,
    *,
    arch: str | None = None,
    trust: bool = False,
) -> Model:
    """Build the :class:`Model` of a file: fields from the caller, else the file's metadata;
    the record of where each came from goes to ``meta["input_space"]``."""
    shape_from_file: tuple[int, ...] | None = None
    if fmt == "pt2":
        from robustbench_lite.models.exported import load_exported
        from robustbench_lite.models.meta import zip_meta

        check_archive_size(path, max_checkpoint_bytes())
        net, shape_from_file = load_exported(path, trust_checkpoint=trust)
        file_meta = zip_meta(path, "torch.export")
    file_meta = dict(file_meta or {})
    where = {
        "onnx": "ONNX metadata_props rbl_meta",
        "pt2": "torch.export extra file rbl_meta.json",
        "torchscript": "TorchScript extra file rbl_meta.json",
        "state_dict": "checkpoint rbl_meta entry",
    }[fmt]
    fields: dict[str, Any] = {}
    space: dict[str, Any] = {}
    for item, keys in SPACE_ITEMS:
        if any(k in given for k in keys):
            source, values = _label(given_by, item), {k: given.get(k) for k in keys}
        elif any(k in file_meta for k in keys):
            source, values = f"{path.name} ({where})", {k: file_meta.get(k) for k in keys}
        else:
            continue
        fields.update({k: v for k, v in values.items() if v is not None})
        space[item] = {"value": _plain(values, item), "source": source}
    if "vocab" in file_meta:  # a text model's vocabulary travels with its weights
        fields["vocab"] = file_meta["vocab"]
    if "input_shape" not in fields and shape_from_file is not None:
        fields["input_shape"] = shape_from_file
        space["input_shape"] = {"value": list(shape_from_file), "source": f"{path.name} (graph)"}
    space.setdefault("bounds", {"value": None, "source": None})
    space.setdefault("normalization", {"value": None, "source": None})
    fields.setdefault("bounds", PENDING_BOUNDS)
    fields["name"] = given.get("name", path.name)
    if fmt == "onnx":
        from robustbench_lite.models.onnx_import import load_onnx_model

        model = load_onnx_model(path, **fields)
        if "input_shape" not in space and model.input_shape is not None:
            space["input_shape"] = {
                "value": list(model.input_shape),
                "source": f"{path.name} (ONNX graph input)",
            }
        meta: dict[str, Any] = dict(model.meta)
    else:
        model = Model(net=net, **fields)
        meta = {"checkpoint_sha256": file_sha256(path), "format": fmt}
        if arch is not None:
            meta["arch"] = arch
    meta["input_space"] = space
    if "data" in file_meta:
        meta["data"] = {**file_meta["data"], "declared_by": f"{path.name} ({where})"}
    if "training" in file_meta:
        meta["training"] = file_meta["training"]
    from dataclasses import replace

    return replace(model, meta=meta)


def _plain(values: dict[str, Any], item: str) -> Any:
    """A JSON-friendly value for the record (lists, not tuples)."""
    if item == "normalization":
        mean, std = values.get("mean"), values.get("std")
        return {"mean": _listed(mean), "std": _listed(std)}
    return _listed(next(iter(values.values())))


def _listed(value: Any) -> Any:
    return (
        [float(v) if isinstance(v, float) else v for v in value]
        if isinstance(value, (tuple, list))
        else value
    )


def _override(model: Model, given: dict[str, Any], given_by: str) -> Model:
    """A zoo model with what the caller gave instead of its entry's values, recorded."""
    if not given:
        return model
    from dataclasses import replace

    space = dict(model.meta.get("input_space") or {})
    for item, keys in SPACE_ITEMS:
        if any(k in given for k in keys):
            values = {k: given.get(k) for k in keys}
            space[item] = {"value": _plain(values, item), "source": _label(given_by, item)}
    fields = {k: v for k, v in given.items()}
    return replace(model, **fields, meta={**model.meta, "input_space": space})


def is_torchscript_archive(path: Path) -> bool:
    """True when ``path`` is a zip laid out as TorchScript (a ``code/`` folder or a
    ``constants.pkl`` member). Reads the zip's directory only; nothing is unpickled or run."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    for name in names:
        parts = name.split("/")
        if parts[-1] == "constants.pkl" or "code" in parts[:-1]:
            return True
    return False


def _load_torchscript(path: Path, *, trust_checkpoint: bool = False) -> nn.Module:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a TorchScript archive; for a state_dict checkpoint pass its architecture "
            "with --arch package.module:Class"
        )
    if not is_torchscript_archive(path):
        raise CheckpointError(
            f"{path} holds no TorchScript program (no code/ or constants.pkl member); for a "
            "state_dict checkpoint pass --arch package.module:Class"
        )
    if not trust_checkpoint:  # refused before torch.jit.load: loading runs the file's own code
        raise CheckpointError(
            f"{path} is a TorchScript archive, whose scripted code runs while it loads, so it was "
            "refused and not loaded; pass --trust-checkpoint (Python: trust_checkpoint=True) only "
            "if you trust its source, or save a state_dict and load it with --arch"
        )
    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; loading still works
            warnings.simplefilter("ignore", DeprecationWarning)
            net: nn.Module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        first = first_line(exc)
        raise CheckpointError(
            f"{path} is not a loadable TorchScript file ({first}); for a state_dict checkpoint "
            "pass --arch package.module:Class"
        ) from None
    return net


@contextlib.contextmanager
def _importable_from(folders: Sequence[str | Path]) -> Iterator[list[str]]:
    """``folders`` first on ``sys.path`` for one import (as ``python script.py`` puts its own
    folder first), then removed again; yields them as strings."""
    wanted = list(dict.fromkeys(str(Path(f).expanduser().resolve()) for f in folders))
    added = [f for f in wanted if f not in sys.path]
    sys.path[:0] = added
    try:
        yield wanted
    finally:
        for folder in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
        importlib.invalidate_caches()


def resolve_arch(arch: str, paths: Sequence[str | Path] = ()) -> nn.Module:
    """Import ``package.module:attr`` and call it with no arguments; never ``eval``.

    The module is looked up in ``paths`` first (the CLI passes the current folder, a suite its
    own folder), then on ``sys.path``. ``attr`` must be an ``nn.Module`` instance (used as is),
    an ``nn.Module`` subclass, or a function annotated to return one (checked with
    :func:`typing.get_type_hints` before it is called); anything else (``os:abort``,
    ``tempfile:mkdtemp``) is refused without a call.
    """
    module_name, sep, attr = arch.partition(":")
    if not sep or not module_name or not attr or not attr.replace(".", "_").isidentifier():
        raise CheckpointError(f"arch {arch!r}: write it as package.module:ClassOrFactory")
    with _importable_from(paths) as added:
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and not module_name.startswith(exc.name) and exc.name != module_name:
                raise CheckpointError(
                    f"arch {arch!r}: importing {module_name} failed (No module named "
                    f"{exc.name!r}); install what it needs"
                ) from None
            where = ", ".join(added + ["PYTHONPATH"]) if added else "PYTHONPATH"
            nearby = _module_names(paths)
            raise CheckpointError(
                f"arch {arch!r}: cannot import {module_name} (no such module in {where})"
                f"{did_you_mean(module_name, nearby)}"
            ) from None
        except Exception as exc:  # the user's module failed while importing: report it
            raise CheckpointError(
                f"arch {arch!r}: importing {module_name} failed ({type(exc).__name__}: "
                f"{_first_line(exc)})"
            ) from None
    owner = module_name
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise CheckpointError(
                f"arch {arch!r}: {owner} has no attribute {part}{did_you_mean(part, names)}"
            )
        obj = getattr(obj, part)
        owner = f"{owner}.{part}"
    if isinstance(obj, nn.Module) or not callable(obj):
        net = obj
    else:
        _require_module_builder(arch, attr, obj)
        try:
            net = obj()
        except Exception as exc:  # the user's constructor: report it, do not crash
            raise CheckpointError(
                f"arch {arch!r}: calling {attr}() failed ({type(exc).__name__}: {_first_line(exc)}); "
                "point --arch at a class or factory that builds the network with no arguments"
            ) from None
    if not isinstance(net, nn.Module):
        raise CheckpointError(f"arch {arch!r} gave a {type(net).__name__}, not a torch.nn.Module")
    return net


def _module_names(paths: Sequence[str | Path]) -> list[str]:
    """The Python modules (``*.py`` files, packages) directly in ``paths``."""
    names: list[str] = []
    for folder in paths:
        try:
            for entry in Path(folder).expanduser().iterdir():
                if entry.suffix == ".py" or (entry / "__init__.py").is_file():
                    names.append(entry.stem)
        except OSError:
            continue
    return names


def _require_module_builder(arch: str, attr: str, obj: Any) -> None:
    """Refuse, without calling it, anything but an nn.Module subclass or a function annotated
    to return one."""
    if inspect.isclass(obj):
        if issubclass(obj, nn.Module):
            return
        what = f"the class {obj.__module__}.{obj.__qualname__}, not an nn.Module subclass"
    elif inspect.isfunction(obj) or inspect.ismethod(obj):
        try:
            returns = typing.get_type_hints(obj).get("return")
        except Exception as exc:  # an annotation naming something that does not resolve
            returns = None
            note = f"whose return annotation does not resolve ({type(exc).__name__})"
        else:
            shown = getattr(returns, "__name__", None) or str(returns)
            note = "with no return annotation" if returns is None else f"annotated -> {shown}"
        if inspect.isclass(returns) and issubclass(returns, nn.Module):
            return
        what = f"the function {attr}, {note}"
    else:
        what = f"a {type(obj).__name__}, not an nn.Module subclass or a Python function"
    raise CheckpointError(
        f"arch {arch!r} names {what}, so it was not called; name an nn.Module subclass "
        "(package.module:Net) or a function annotated to return one "
        "(def make() -> torch.nn.Module)"
    )


def max_checkpoint_bytes(net: nn.Module | None = None) -> int:
    """The cap on a checkpoint archive's inflated size: ``$RBL_MAX_CHECKPOINT_BYTES``, else
    ``ARCH_FACTOR`` times ``net``'s parameter and buffer bytes (at least ``MIN_MAX_BYTES``),
    else ``DEFAULT_MAX_BYTES``."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value <= 0:
            raise CheckpointError(
                f"{MAX_BYTES_ENV}={text[:40]!r}: write a positive whole number of bytes, e.g. "
                f"{MAX_BYTES_ENV}=8000000000"
            )
        return value
    if net is None:
        return DEFAULT_MAX_BYTES
    size = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    return max(ARCH_FACTOR * size, MIN_MAX_BYTES)


def check_archive_size(path: Path, cap: int, *, arch: str | None = None) -> None:
    """Refuse a zip checkpoint whose members declare more than ``cap`` bytes inflated, reading
    only the zip's directory (a 3 MB file must not inflate to 3 GB before the key check)."""
    declared = zip_inflated_bytes(path)
    if declared is None:
        return  # not a readable zip: torch.load reports it
    if declared > cap:
        if os.environ.get(MAX_BYTES_ENV, "").strip():
            basis = f"set by {MAX_BYTES_ENV}"
        elif arch is not None:
            basis = f"{ARCH_FACTOR}x the weight bytes of {arch}, at least {MIN_MAX_BYTES >> 20} MiB"
        else:
            basis = "the default"
        raise CheckpointError(
            f"{path} declares {declared:,} bytes once inflated, more than the cap of {cap:,} bytes "
            f"({basis}), so it was refused before inflating; if the checkpoint is genuine, raise "
            f"the cap with {MAX_BYTES_ENV}={declared}"
        )


def read_state_dict(
    path: Path,
    *,
    trust_checkpoint: bool = False,
    max_bytes: int | None = None,
    arch: str | None = None,
) -> dict[str, torch.Tensor]:
    """Read a state_dict safely; unwraps ``{"state_dict": ...}`` and ``{"model": ...}``.

    A zip checkpoint whose members would inflate past ``max_bytes`` (default:
    :func:`max_checkpoint_bytes`) is refused before it is read; a TorchScript archive is
    refused (it is not a state_dict, and loading it runs code).
    """
    return _read_checkpoint(
        path, trust_checkpoint=trust_checkpoint, max_bytes=max_bytes, arch=arch
    )[0]


def _read_checkpoint(
    path: Path,
    *,
    trust_checkpoint: bool = False,
    max_bytes: int | None = None,
    arch: str | None = None,
) -> tuple[dict[str, torch.Tensor], Any]:
    """The state_dict at ``path`` and its ``rbl_meta`` entry (None when it has none)."""
    if is_torchscript_archive(path):
        raise CheckpointError(
            f"{path} is a TorchScript archive, not a state_dict; drop --arch to load it as "
            "TorchScript (which needs --trust-checkpoint)"
        )
    check_archive_size(path, max_checkpoint_bytes() if max_bytes is None else max_bytes, arch=arch)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the error says it all
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        imports = pickle_imports(path)
        if imports is None:  # not even a well-formed pickle: random bytes or a foreign format
            raise CheckpointError(
                f"{path} is not a readable PyTorch checkpoint (corrupt, truncated or not a checkpoint: "
                f"{_first_line(exc.__context__ or exc)}); save the weights with torch.save(net.state_dict(), path)"
            ) from None
        if not trust_checkpoint:
            named = ", ".join(imports[:4]) or "objects beyond tensors"
            raise CheckpointError(
                f"{path} needs full unpickling, which can run code ({named}), so it was refused and not "
                "loaded; re-save it as a plain state_dict, or pass trust_checkpoint=True "
                "(CLI: --trust-checkpoint) only if you trust its source"
            ) from None
        obj = _load_trusted(path)
    except (
        Exception
    ) as exc:  # garbage bytes make the unpickler fail in many ways (IndexError, KeyError, ...)
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {_first_line(exc)}"
        ) from None
    from robustbench_lite.models.meta import META_KEY

    raw_meta = None
    if isinstance(obj, dict) and META_KEY in obj:  # {"state_dict": ..., "rbl_meta": {...}}
        obj = dict(obj)
        raw_meta = obj.pop(META_KEY)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return obj, raw_meta


def _first_line(exc: BaseException) -> str:
    """The last line of an exception's message, cut at its first sentence (max 200 chars)."""
    text = str(exc).strip()
    return text.splitlines()[-1].split(". ")[0][:200] if text else type(exc).__name__


def pickle_imports(path: Path) -> list[str] | None:
    """Globals a checkpoint's pickle would import, read without unpickling (``pickletools``).

    Returns the non-torch ``module.name`` strings (torch's own rebuild helpers are left out), or
    None when the file is not a well-formed pickle (nor a torch zip archive holding one).
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                member = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                if member is None:
                    return None
                data = zf.read(member)
        else:
            data = path.read_bytes()
        ops = list(pickletools.genops(data))
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError):
        return None
    names: list[str] = []
    strings: list[str] = []
    for op, arg, _ in ops:
        if isinstance(arg, str):
            strings.append(arg)
        if op.name == "GLOBAL" and isinstance(arg, str):
            names.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            names.append(f"{strings[-2]}.{strings[-1]}")
            strings.clear()
    safe = ("torch.", "collections.OrderedDict", "builtins.set")
    return sorted({n for n in names if not n.startswith(safe)})


def _load_trusted(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # trusted but still broken
        raise CheckpointError(f"{path} could not be unpickled: {exc}") from None


def load_checkpoint(path: Path, *, arch: str, trust_checkpoint: bool = False, **kw: Any) -> Model:
    """Build ``arch`` and load the state_dict at ``path`` into it (strict: keys must match)."""
    return open_model(path, arch=arch, trust_checkpoint=trust_checkpoint, **kw)


def _load_state_dict_into(
    path: Path, arch: str, trust_checkpoint: bool, arch_paths: Sequence[str | Path]
) -> tuple[nn.Module, dict[str, Any]]:
    """``arch``'s network with the state_dict at ``path`` loaded, and the file's ``rbl_meta``."""
    from robustbench_lite.models.meta import parse_meta

    net = resolve_arch(arch, arch_paths)
    state, raw_meta = _read_checkpoint(
        path, trust_checkpoint=trust_checkpoint, max_bytes=max_checkpoint_bytes(net), arch=arch
    )
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit {arch}: missing keys {_short(missing)}, unexpected keys {_short(unexpected)}"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(f"{path} does not fit {arch}: shape mismatch {_short(wrong)}")
    net.load_state_dict(state)
    file_meta = {} if raw_meta is None else parse_meta(raw_meta, f"{path} (rbl_meta entry)")
    return net, file_meta


def _short(items: list[str], limit: int = 6) -> str:
    if not items:
        return "none"
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + "]" + more

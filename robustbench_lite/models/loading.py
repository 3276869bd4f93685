"""``rbl.load_model(spec)``: zoo names, state_dict checkpoints, TorchScript and ONNX files.

Checkpoints are read with ``torch.load(weights_only=True)``. A checkpoint that needs full
unpickling, and a TorchScript archive (which runs its own scripted code while loading), are
refused unless the caller passes ``trust_checkpoint=True`` (CLI ``--trust-checkpoint``); a file
is recognised by its pickle opcodes and zip layout, without running anything. ``arch`` must name
an ``nn.Module`` subclass or a function annotated to return one: nothing else is called. A
checkpoint archive whose members would inflate past a cap (see :func:`max_checkpoint_bytes`)
is refused before it is inflated.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import pickle
import pickletools
import typing
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.errors import CheckpointError
from robustbench_lite.core.io import not_a_file
from robustbench_lite.core.model import Model

_MODEL_KEYS = ("bounds", "mean", "std", "input_shape", "num_classes", "default_threats", "name")
#: Environment variable that sets the cap (bytes) on a checkpoint archive's inflated size.
MAX_BYTES_ENV = "RBL_MAX_CHECKPOINT_BYTES"
#: Without an architecture to size it from: the cap on a checkpoint archive's inflated size.
DEFAULT_MAX_BYTES = 4 << 30
#: With an architecture: this many times its parameter and buffer bytes (float64 copies,
#: optimizer state beside the weights), but never less than ``MIN_MAX_BYTES``.
ARCH_FACTOR = 8
MIN_MAX_BYTES = 256 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (identifies a checkpoint in reports and the results store)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(
    spec: str | Path | Model, *, arch: str | None = None, trust_checkpoint: bool = False, **kw: Any
) -> Model:
    """Load a model from ``spec``.

    Args:
        spec: ``"zoo:NAME"``, a state_dict checkpoint (needs ``arch``), a TorchScript file or
            an ``.onnx`` file. A :class:`Model` is returned unchanged.
        arch: ``"package.module:attr"``, a class or factory called with no arguments whose
            result the state_dict is loaded into. Never evaluated as code.
        trust_checkpoint: allow full unpickling for checkpoints that need it. Only for files
            whose source you trust: unpickling can run arbitrary code.
        **kw: :class:`Model` fields (bounds, mean, std, input_shape, num_classes, name, ...).
    """
    if isinstance(spec, Model):
        return spec
    unknown = [k for k in kw if k not in _MODEL_KEYS]
    if unknown:
        raise CheckpointError(
            f"load_model: unknown option {unknown[0]!r}; allowed: {', '.join(_MODEL_KEYS)}"
        )
    text = str(spec)
    if text.startswith("zoo:"):
        from robustbench_lite.zoo import load_zoo_model

        return load_zoo_model(text[4:])
    path = Path(text).expanduser()
    problem = not_a_file(path)
    if problem:
        hint = " (zoo models are written zoo:NAME)" if ":" not in text and "/" not in text else ""
        raise CheckpointError(f"model file {text} {problem}{hint}")
    if path.suffix.lower() == ".onnx":
        from robustbench_lite.models.onnx_import import load_onnx_model

        return load_onnx_model(path, **kw)
    if arch is None:
        return _load_torchscript(path, trust_checkpoint=trust_checkpoint, **kw)
    return load_checkpoint(path, arch=arch, trust_checkpoint=trust_checkpoint, **kw)


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


def _load_torchscript(path: Path, *, trust_checkpoint: bool = False, **kw: Any) -> Model:
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
            net = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a loadable TorchScript file ({first}); for a state_dict checkpoint "
            "pass --arch package.module:Class"
        ) from None
    kw.setdefault("name", path.name)
    return Model(
        net=net, meta={"checkpoint_sha256": file_sha256(path), "format": "torchscript"}, **kw
    )


def resolve_arch(arch: str) -> nn.Module:
    """Import ``package.module:attr`` and call it with no arguments; never ``eval``.

    ``attr`` must be an ``nn.Module`` instance (used as is), an ``nn.Module`` subclass, or a
    function annotated to return one (checked with :func:`typing.get_type_hints` before it is
    called); anything else (``os:abort``, ``tempfile:mkdtemp``) is refused without a call.
    """
    module_name, sep, attr = arch.partition(":")
    if not sep or not module_name or not attr or not attr.replace(".", "_").isidentifier():
        raise CheckpointError(f"arch {arch!r}: write it as package.module:ClassOrFactory")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CheckpointError(
            f"arch {arch!r}: cannot import {module_name} ({exc}); is it on PYTHONPATH?"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CheckpointError(f"arch {arch!r}: {module_name} has no attribute {attr}")
        obj = getattr(obj, part)
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
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
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
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return obj


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
    net = resolve_arch(arch)
    state = read_state_dict(
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
    kw.setdefault("name", path.name)
    meta = {"checkpoint_sha256": file_sha256(path), "arch": arch, "format": "state_dict"}
    return Model(net=net, meta=meta, **kw)


def _short(items: list[str], limit: int = 6) -> str:
    if not items:
        return "none"
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + "]" + more

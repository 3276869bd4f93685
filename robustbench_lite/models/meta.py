"""``rbl_meta``: what a checkpoint file says about its model's input space and data.

The same JSON object travels with every format (read here, never executed)::

    {"bounds": [0, 1], "mean": [0.5], "std": [0.25], "input_shape": [1, 8, 8],
     "num_classes": 10, "default_threats": ["linf:0.1"],
     "dataset": "digits",          # or {"name": "orl", "options": {"size": [56, 46]}}
     "training": {"arch": "pkg.mod:Net", "recipe_hash": "...", ...}}  # robustbench-lite train

A text model (token ids in, ``Model.vocab`` set) also saves its vocabulary, the JSON form of
:meth:`robustbench_lite.worlds.text.Vocabulary.to_dict`, under ``"vocab"``:
``{"input_shape": [32], "num_classes": 2, "vocab": model.vocab.to_dict()}``.

Where it is stored:

* state_dict: an ``"rbl_meta"`` entry beside the weights in the saved dict,
  ``torch.save({"state_dict": net.state_dict(), "rbl_meta": {...}}, "net.pt")``
  (plain Python values, so ``torch.load(weights_only=True)`` reads it);
* TorchScript: the extra file ``rbl_meta.json``,
  ``torch.jit.save(scripted, "net.ts", _extra_files={"rbl_meta.json": json.dumps(meta)})``;
* ``torch.export`` (``.pt2``): the extra file ``rbl_meta.json``,
  ``torch.export.save(ep, "net.pt2", extra_files={"rbl_meta.json": json.dumps(meta)})``;
* ONNX: the ``metadata_props`` entry ``rbl_meta``,
  ``onnx.helper.set_model_props(proto, {"rbl_meta": json.dumps(meta)})``.

Every key is optional; unknown keys and ill-typed values are refused (the file is not
trusted), and what the command line or a suite gives wins over the file.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustbench_lite.core.errors import CheckpointError, RobustbenchLiteError, did_you_mean

#: The key (ONNX ``metadata_props``, state_dict entry) and extra-file name of the metadata.
META_KEY = "rbl_meta"
META_FILE = "rbl_meta.json"
META_KEYS = (
    "bounds",
    "mean",
    "std",
    "input_shape",
    "num_classes",
    "default_threats",
    "dataset",
    "training",
    "vocab",
)
#: The largest metadata text read (bytes); real metadata is a few hundred, a text model's
#: vocabulary about 10 per token (a 5000-token one ~50 KB).
MAX_META_BYTES = 4 << 20


def parse_meta(raw: Any, where: str) -> dict[str, Any]:
    """Validate ``raw`` (a JSON text or a mapping) into Model fields plus ``data``.

    Returns a dict with any of ``bounds``, ``mean``, ``std``, ``input_shape``, ``num_classes``,
    ``default_threats`` (as the :class:`Model` takes them), ``data`` (``{"source": NAME,
    "options": {...}}``) and ``training`` (how ``robustbench-lite train`` made the weights:
    arch, recipe hash, trainer, threat, metrics; kept in ``model.meta``, never acted on). ``where`` names the file and place in error messages.
    """
    if isinstance(raw, (bytes, str)):
        if len(raw) > MAX_META_BYTES:
            raise CheckpointError(f"{where}: {len(raw)} bytes, over {MAX_META_BYTES}")
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(raw, Mapping):
        raise CheckpointError(
            f"{where} is a {type(raw).__name__}; write a JSON object such as "
            '{"bounds": [0, 1], "dataset": "digits"}'
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in META_KEYS:
            raise CheckpointError(
                f"{where}: unknown key {str(key)[:40]!r}{did_you_mean(str(key), META_KEYS)}; "
                f"known: {', '.join(META_KEYS)}"
            )
        out.update(_field(key, value, f"{where} {key}"))
    if ("mean" in out) != ("std" in out):
        raise CheckpointError(f"{where}: give both mean and std, or neither")
    if "mean" in out and len(out["mean"]) != len(out["std"]):
        raise CheckpointError(f"{where}: mean and std have different lengths")
    return out


def _numbers(value: Any, what: str, *, count: int | None = None) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not value or len(value) > 4096:
        raise CheckpointError(f"{what}: write a list of numbers")
    if count is not None and len(value) != count:
        raise CheckpointError(f"{what}: write {count} numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise CheckpointError(f"{what}: write a list of numbers")
    numbers = tuple(float(v) for v in value)
    if not all(math.isfinite(v) for v in numbers):
        raise CheckpointError(f"{what}: every number must be finite")
    return numbers


def _field(key: str, value: Any, what: str) -> dict[str, Any]:
    if key == "bounds":
        lo, hi = _numbers(value, what, count=2)
        if not lo < hi:
            raise CheckpointError(f"{what}: lo must be below hi, e.g. [0, 1]")
        return {"bounds": (lo, hi)}
    if key in ("mean", "std"):
        numbers = _numbers(value, what)
        if key == "std" and any(v <= 0 for v in numbers):
            raise CheckpointError(f"{what}: every entry must be > 0")
        return {key: numbers}
    if key == "input_shape":
        if (
            not isinstance(value, (list, tuple))
            or not 1 <= len(value) <= 8
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            raise CheckpointError(f"{what}: write the shape of one sample, e.g. [1, 8, 8]")
        return {"input_shape": tuple(value)}
    if key == "num_classes":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{what}: write a positive whole number")
        return {"num_classes": value}
    if key == "default_threats":
        from robustbench_lite.core.threat import ThreatModel

        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise CheckpointError(f'{what}: write a list of threat specs, e.g. ["linf:0.1"]')
        try:
            return {"default_threats": tuple(ThreatModel.parse(v).spec() for v in value[:32])}
        except RobustbenchLiteError as exc:
            raise CheckpointError(f"{what}: {exc}") from None
    if key == "vocab":  # a text model's Vocabulary (its to_dict form)
        from robustbench_lite.worlds.text import Vocabulary

        try:
            return {"vocab": Vocabulary.from_dict(value, source=what)}
        except RobustbenchLiteError as exc:
            raise CheckpointError(str(exc)) from None
    if key == "training":
        return {"training": _training(value, what)}
    return {"data": _dataset(value, what)}


def _training(value: Any, what: str) -> dict[str, Any]:
    """How the weights were made (``robustbench-lite train``): recorded, never acted on."""
    if not isinstance(value, Mapping) or not _record(value):
        raise CheckpointError(
            f"{what}: write a mapping of names to numbers, strings, lists and mappings "
            '(robustbench-lite train writes {"arch": ..., "recipe_hash": ...})'
        )
    return dict(value)


def _record(value: Any, depth: int = 0) -> bool:
    """A small JSON-like value: at most 6 levels and 256 entries per collection."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return not isinstance(value, str) or len(value) <= 4096
    if depth >= 6 or not isinstance(value, (list, tuple, Mapping)) or len(value) > 256:
        return False
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _record(v, depth + 1) for k, v in value.items())
    return all(_record(v, depth + 1) for v in value)


def _dataset(value: Any, what: str) -> dict[str, Any]:
    from robustbench_lite.datasets import list_datasets

    options: Any
    if isinstance(value, str):
        name, options = value, {}
    elif isinstance(value, Mapping) and set(value) <= {"name", "options"} and "name" in value:
        name, options = value["name"], value.get("options") or {}
    else:
        raise CheckpointError(
            f'{what}: write a dataset name ("digits") or {{"name": "orl", "options": {{...}}}}'
        )
    known = [d for d in list_datasets() if d != "npz"]
    if not isinstance(name, str) or name.replace("_", "-") not in known:
        raise CheckpointError(
            f"{what}: unknown dataset {str(name)[:40]!r}{did_you_mean(str(name), known)}; "
            f"choose one of {', '.join(known)}"
        )
    if not isinstance(options, Mapping) or not all(
        isinstance(k, str) and _plain(v) for k, v in options.items()
    ):
        raise CheckpointError(f"{what}: options must map names to numbers, strings or lists")
    return {"source": name, "options": {k: _tupled(v) for k, v in options.items()}}


def _plain(value: Any, depth: int = 0) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    return (
        isinstance(value, (list, tuple))
        and depth < 2
        and len(value) <= 16
        and all(_plain(v, depth + 1) for v in value)
    )


def _tupled(value: Any) -> Any:
    """JSON lists become tuples (``size=(56, 46)``, as the dataset loaders take them)."""
    return tuple(_tupled(v) for v in value) if isinstance(value, (list, tuple)) else value


def zip_extra_file(path: Path, name: str = META_FILE) -> bytes | None:
    """The bytes of ``<root>/extra/<name>`` in a TorchScript or ``.pt2`` zip, or None.

    Reads the zip directory and that one member only; nothing is unpickled or run.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                parts = info.filename.split("/")
                if len(parts) >= 2 and parts[-2:] == ["extra", name]:
                    if info.file_size > MAX_META_BYTES:
                        raise CheckpointError(
                            f"{path}: extra file {name} is {info.file_size} bytes, over "
                            f"{MAX_META_BYTES}"
                        )
                    return zf.read(info)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    return None


def zip_meta(path: Path, kind: str) -> dict[str, Any]:
    """The validated ``rbl_meta.json`` extra file of a TorchScript or ``.pt2`` archive."""
    raw = zip_extra_file(path)
    return {} if raw is None else parse_meta(raw, f"{path} ({kind} extra file {META_FILE})")


def onnx_meta(path: Path) -> dict[str, Any]:
    """The validated ``rbl_meta`` entry of an ONNX file's ``metadata_props`` ({} if absent).

    Reads the model proto without its external data; a file ``onnx`` cannot parse yields {}
    here and is reported by the importer."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # the importer names the problem in its own words
        return {}
    for prop in proto.metadata_props:
        if prop.key == META_KEY:
            return parse_meta(prop.value, f"{path} (ONNX metadata_props {META_KEY})")
    return {}

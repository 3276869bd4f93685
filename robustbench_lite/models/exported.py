"""``torch.export`` programs (``.pt2``): checked, then loaded without ``--trust-checkpoint``.

Why no trust is needed, and what makes that true. An ``ExportedProgram`` archive is a graph of
ATen operators in JSON plus raw tensor bytes; deserializing that graph needs no code from the
file, unlike TorchScript (whose archive carries Python-like code) or a pickled module. But
``torch.export.load`` as shipped (torch 2.13) can also run what a crafted file brings, so the
archive is checked first, by reading the zip directory and its JSON only, and refused unless it
is a plain graph:

* only the members of a plain archive (the program JSON, weight/constant configs, raw tensor
  files, sample inputs, extra files): no ``data/aotinductor/`` shared libraries, which
  ``torch.export.load`` would ``dlopen``, and no legacy layout (read with full unpickling);
* every weight and constant stored as raw bytes (``use_pickle: false``), no custom or opaque
  objects (both unpickled with ``weights_only=False``);
* the sample inputs readable by ``torch.load(weights_only=True)`` (torch otherwise retries them
  with full unpickling);
* every operator a ``torch.ops.aten/prims/higher_order`` operator or a symbolic-shape helper
  (``operator.add``, ``torch.sym_max``, ...): the deserializer resolves any dotted ``torch.*``
  name, so ``torch.os.system`` would become a call in the graph;
* symbolic shape expressions built only from sympy's constructors (``Symbol('s0',
  integer=True)``, ``Add``, ``FloorDiv``, ...): the deserializer evaluates them with
  ``sympy.sympify``, which ``eval``\\ s its input;
* guards only comparisons of input sizes with numbers (``L['x'].size()[1] == 8``): ``ep.module()``
  compiles the guard code with ``exec``;
* parameter, buffer and input names plain dotted identifiers (they become attribute paths in
  the code ``ep.module()`` generates).

An archive that fails a check is refused with the reason unless ``--trust-checkpoint`` is given.
The graph then runs as ``ep.module()``: the same ATen operators the network ran when exported.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lite.core.errors import CheckpointError

#: Members a plain archive holds, after its root folder.
_MEMBERS = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/[\w.-]+\.json|data/weights/[\w.-]+|data/constants/[\w.-]+"
    r"|data/sample_inputs/[\w.-]+\.pt|extra/[\w.-]+)"
)
_OPERATOR_PREFIXES = ("torch.ops.aten.", "torch.ops.prims.", "torch.ops.higher_order.")
_SYM_OPERATORS = {
    *(
        f"_operator.{name}"
        for name in (
            "add",
            "sub",
            "mul",
            "truediv",
            "floordiv",
            "mod",
            "pow",
            "neg",
            "pos",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "and_",
            "or_",
            "lshift",
            "rshift",
            "getitem",
        )
    ),
    "math.trunc",
    *(
        f"torch.sym_{name}"
        for name in ("not", "int", "float", "ite", "max", "min", "sqrt", "sum", "and", "or")
    ),
}
#: The names a symbolic shape expression may use: sympy constructors and their flags.
_SYMPY_NAMES = {
    "Symbol",
    "Integer",
    "Rational",
    "Float",
    "Add",
    "Mul",
    "Pow",
    "Mod",
    "Max",
    "Min",
    "Abs",
    "Eq",
    "Ne",
    "Lt",
    "Le",
    "Gt",
    "Ge",
    "And",
    "Or",
    "Not",
    "true",
    "false",
    "oo",
    "zoo",
    "nan",
    "Infinity",
    "NegativeInfinity",
    "True",
    "False",
    "FloorDiv",
    "ModularIndexing",
    "Where",
    "PythonMod",
    "CleanDiv",
    "CeilToInt",
    "FloorToInt",
    "CeilDiv",
    "LShift",
    "RShift",
    "PowByNatural",
    "FloatPow",
    "TruncToFloat",
    "TruncToInt",
    "RoundToInt",
    "RoundDecimal",
    "ToFloat",
    "FloatTrueDiv",
    "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator",
    "OpaqueUnaryFn_sqrt",
    "BitwiseFn_bitwise_and",
    "BitwiseFn_bitwise_or",
    "Identity",
    "integer",
    "positive",
    "nonnegative",
    "negative",
    "real",
    "finite",
    "infinite",
    "evaluate",
    "precision",
}
_EXPR_OPS = {"(", ")", ",", "=", "+", "-", "*", "/", "//", "%", "**"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
_SIZE = r"L\['[A-Za-z_][A-Za-z0-9_]*'\](\.size\(\)\[\d+\])?"
_GUARD = re.compile(rf"\s*{_SIZE}\s*(==|!=|>=|<=|<|>)\s*(-?\d+|{_SIZE})\s*")
#: Keys whose strings are names that end up in generated code: plain (dotted) identifiers only.
_NAME_KEYS = {
    "name",
    "parameter_name",
    "buffer_name",
    "tensor_constant_name",
    "custom_obj_name",
    "fqn",
    "as_name",
    "as_string",
    "path_name",
}
_METADATA_KEYS = {"metadata"}


def is_exported_program(path: Path) -> bool:
    """True when ``path`` is a zip laid out as a ``torch.export`` archive (``archive_format``
    reading ``pt2`` and a ``models/`` member). Reads the zip directory only."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            fmt = next((n for n in names if n.split("/")[-1] == "archive_format"), None)
            if fmt is None or zf.getinfo(fmt).file_size > 16:
                return False
            return zf.read(fmt).strip() == b"pt2" and any("/models/" in f"/{n}" for n in names)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError):
        return False


def check_exported_archive(path: Path, data: bytes | None = None) -> None:
    """Refuse an archive that ``torch.export.load`` or ``ep.module()`` could not read without
    running something from the file (see the module docstring). Reads JSON and the zip
    directory only; the sample inputs are read with ``torch.load(weights_only=True)``.

    ``data``: the archive's bytes (checked instead of reading ``path``, which names it)."""
    with zipfile.ZipFile(io.BytesIO(data) if data is not None else path) as zf:
        infos = zf.infolist()
        root = _root(infos, path)
        broken = zf.testzip()  # torch's reader checks no CRC: corrupt weights would load
        if broken is not None:
            raise CheckpointError(f"{path}: member {broken} is corrupt (CRC mismatch)")
        for info in infos:
            rest = info.filename[len(root) :]
            if info.is_dir():
                continue
            if not _MEMBERS.fullmatch(rest):
                raise _refused(path, f"it holds {rest[:80]!r}, not part of a plain program")
            if rest.startswith(("models/", "data/weights/", "data/constants/")) and (
                rest.endswith(".json")
            ):
                _check_json(path, rest, _json(zf, info, path))
            elif rest.startswith(("data/weights/", "data/constants/")) and rest.endswith(".pt"):
                raise _refused(path, f"{rest} is a pickled legacy weights file")
            elif rest.startswith("data/sample_inputs/"):
                _check_sample_inputs(path, zf.read(info))
        if not any(i.filename[len(root) :].startswith("models/") for i in infos):
            raise CheckpointError(f"{path} holds no exported program (no models/ member)")


def _root(infos: list[zipfile.ZipInfo], path: Path) -> str:
    fmt = [i.filename for i in infos if i.filename.split("/")[-1] == "archive_format"]
    if len(fmt) != 1:
        raise CheckpointError(f"{path} is not a torch.export archive (no single archive_format)")
    root = fmt[0][: -len("archive_format")]
    if any(not i.filename.startswith(root) for i in infos):
        raise _refused(path, "its members do not share one root folder")
    return root


def _json(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> Any:
    if info.file_size > 256 << 20:
        raise _refused(path, f"{info.filename} is {info.file_size} bytes of JSON")
    try:
        return json.loads(zf.read(info))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: {info.filename} is not valid JSON ({exc})") from None


def _refused(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: {why}, which torch.export.load could run as code, so it was refused and not "
        "loaded; re-export it with torch.export.export/save from plain torch operators, or pass "
        "--trust-checkpoint (Python: trust_checkpoint=True) only if you trust its source"
    )


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(key, value, parent) for every value under ``node``; metadata subtrees are skipped
    (stack traces and module paths are only stored, never compiled or called)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _METADATA_KEYS:
                continue
            yield k, v, node
            yield from _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield key, v, node
            yield from _walk(v, key)


def _check_json(path: Path, member: str, doc: Any) -> None:
    for key, value, parent in _walk(doc):
        if key == "use_pickle" and value is not False:
            raise _refused(path, f"{member} stores a pickled tensor")
        if key == "path_name" and isinstance(value, str) and value.startswith(("custom", "opaque")):
            raise _refused(path, f"{member} holds a custom or opaque object ({value[:40]})")
        if not isinstance(value, str):
            continue
        if key == "target" and isinstance(parent, dict) and "inputs" in parent:
            _check_operator(path, value)
        elif key == "as_operator":
            _check_operator(path, value)
        elif key == "expr_str":
            _check_expression(path, value)
        elif key == "guards_code":
            if not _GUARD.fullmatch(value):
                raise _refused(path, f"the guard {value[:80]!r} is more than a size comparison")
        elif key in _NAME_KEYS and value and not _DOTTED.fullmatch(value):
            raise _refused(path, f"the name {value[:80]!r} is not a plain identifier")


def _check_operator(path: Path, target: str) -> None:
    if target.startswith(_OPERATOR_PREFIXES) and _DOTTED.fullmatch(target):
        return
    if target in _SYM_OPERATORS:
        return
    raise _refused(path, f"its graph calls {target[:80]!r}, not a torch operator")


def _check_expression(path: Path, text: str) -> None:
    """Only sympy constructors, numbers, quoted identifiers and arithmetic (no attribute access,
    no other names: ``sympify`` evaluates the text)."""
    if len(text) > 4096 or "\\" in text:
        raise _refused(path, f"the shape expression {text[:80]!r} is not plain arithmetic")
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        raise _refused(
            path, f"the shape expression {text[:80]!r} is not plain arithmetic"
        ) from None
    for tok in tokens:
        ok = (
            tok.type in (tokenize.NUMBER, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.NL)
            or (tok.type == tokenize.NAME and (tok.string in _SYMPY_NAMES))
            or (tok.type == tokenize.OP and tok.string in _EXPR_OPS)
            or (
                tok.type == tokenize.STRING
                and tok.string[:1] in "'\""
                and tok.string[-1:] == tok.string[:1]
                and _IDENT.fullmatch(tok.string[1:-1]) is not None
            )
        )
        if not ok:
            raise _refused(
                path, f"the shape expression {text[:80]!r} uses {tok.string[:40]!r}, not sympy"
            )


def _check_sample_inputs(path: Path, data: bytes) -> None:
    if not data:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:
        raise _refused(path, "its sample inputs need full unpickling") from None


class ExportedNet(nn.Module):
    """The module of an ``ExportedProgram`` (``ep.module()``), usable as a ``Model.net``.

    ``train``/``eval`` only set the flag: an exported graph is fixed (torch refuses ``eval()``
    on it). A program exported with a fixed batch size runs larger or smaller batches in chunks
    of that size (the last one padded), so attacks may use any batch size.
    """

    def __init__(
        self, program: nn.Module, batch: int | None, archive: bytes = b"", trusted: bool = False
    ) -> None:
        super().__init__()
        self.program = program
        self.batch = batch
        self.archive = archive
        self.trusted = trusted

    def __reduce__(self) -> tuple[Any, tuple[bytes, bool]]:
        """Pickled (worker processes, ``copy.deepcopy``) as the archive's bytes, which are
        checked and loaded again on the other side: torch's graph modules do not pickle."""
        if not self.archive:
            raise TypeError("this exported network keeps no archive bytes to be pickled from")
        return _rebuild, (self.archive, self.trusted)

    def train(self, mode: bool = True) -> ExportedNet:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.batch
        if b is None or x.shape[0] == b:
            out: torch.Tensor = self.program(x)
            return out
        outs = []
        for start in range(0, x.shape[0], b):
            part = x[start : start + b]
            n = part.shape[0]
            if n < b:
                pad = part.new_zeros((b - n, *part.shape[1:]))
                part = torch.cat([part, pad])
            outs.append(self.program(part)[:n])
        return torch.cat(outs) if outs else self.program(x)


def _rebuild(archive: bytes, trusted: bool) -> ExportedNet:
    net, _ = load_exported(Path("<exported program>"), trust_checkpoint=trusted, data=archive)
    return net


def load_exported(
    path: Path, *, trust_checkpoint: bool = False, data: bytes | None = None
) -> tuple[ExportedNet, Any]:
    """``(net, input_shape or None)`` of the ``.pt2`` archive at ``path`` (checked first unless
    ``trust_checkpoint``); the shape is that of the program's input without its batch dim.

    The file is read once: the bytes that were checked are the bytes that are loaded."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not trust_checkpoint:
        try:
            check_exported_archive(path, data)
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, zlib.error) as exc:
            raise CheckpointError(
                f"{path} is not a readable torch.export archive (truncated or corrupt?): "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from None
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    export_log.setLevel(logging.CRITICAL)  # torch logs a traceback before its own fallback
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(data))
            module = program.module()
    except Exception as exc:  # a broken archive fails in many ways inside torch
        text = str(exc).strip()
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        raise CheckpointError(f"{path} is not a loadable torch.export archive ({first})") from None
    finally:
        export_log.setLevel(level)
    shapes = [
        node.meta.get("val")
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs
    ]
    if len(shapes) != 1 or not isinstance(shapes[0], torch.Tensor):
        raise CheckpointError(
            f"{path}: the exported program takes {len(shapes)} inputs; a classifier takes one "
            "tensor (N, ...)"
        )
    dims = list(shapes[0].shape)
    batch = int(dims[0]) if dims and isinstance(dims[0], int) else None
    rest = dims[1:]
    input_shape = tuple(int(d) for d in rest) if all(isinstance(d, int) for d in rest) else None
    return ExportedNet(module, batch, data, trust_checkpoint), input_shape

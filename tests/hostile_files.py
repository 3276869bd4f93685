"""Hostile model files built on the fly by the loading, suite and CLI tests: a TorchScript
archive whose loading writes a file, and a zip checkpoint that inflates to gigabytes."""

from __future__ import annotations

import io
import struct
import threading
import warnings
import zipfile
import zlib
from pathlib import Path

import torch
from torch import nn

_SCRIPTING = threading.Lock()  # torch.jit.script is not thread-safe


class FromFileOnLoad(nn.Module):
    """Scripted ``__setstate__`` calls ``torch.from_file(path, True, 16)``, which creates ``path``
    (64 bytes) when the archive is loaded: code the file runs, not the caller."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.n = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10]

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.path = state[0]
        self.training = state[1]
        self.n = torch.from_file(self.path, True, 16).numel()  # used, so not optimised away


def malicious_torchscript(tmp_path: Path) -> tuple[Path, Path]:
    """(archive, the file its loading would create)."""
    marker = tmp_path / "PWNED"
    archive = tmp_path / "evil.pt"
    with _SCRIPTING, warnings.catch_warnings():  # torch 2.13 deprecates TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(FromFileOnLoad(str(marker))).save(str(archive))
    assert not marker.exists()
    return archive, marker


def _deflated_zeros(size: int, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes and its CRC-32, without holding ``size``
    bytes: full-flushed segments are independent, so one compressed chunk repeats."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(chunk)
    segment = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(size, chunk)
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    tail = comp.compress(bytes(rest)) + comp.flush(zlib.Z_FINISH)
    return segment * count + tail, zlib.crc32(bytes(rest), crc)


def zip_bomb_checkpoint(path: Path, inflated: int) -> None:
    """A torch.save zip whose first tensor member is deflated and inflates to ``inflated``."""
    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out, central = bytearray(), bytearray()
    for info in source.infolist():
        data = source.read(info)
        method, crc, size = 0, zlib.crc32(data), len(data)
        if info.filename.endswith("/data/0"):
            data, crc = _deflated_zeros(inflated)
            method, size = 8, inflated
        name = info.filename.encode()
        offset = len(out)
        common = (method, 0, 0x21, crc, len(data), size, len(name))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, *common, 0) + name + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *common, 0, 0, 0, 0, 0, offset
        )
        central += name
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, *(len(source.infolist()),) * 2, len(central), len(out), 0
    )
    path.write_bytes(bytes(out + central + end))

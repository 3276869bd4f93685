"""T-Miner's code version: a hash of its source files, for honest verdict caches and results.

A cached verdict is only valid for the code that computed it. :func:`code_hash` hashes the
detector's own source files (``tminer.py`` and every ``_tminer_*.py`` beside it, by name and
bytes, in name order); :func:`cache_key` combines it with the detector's settings (its repr),
so a change to either computes the verdict again instead of reusing an old one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def source_files(folder: Path = HERE) -> list[Path]:
    """The detector's source files in ``folder``: ``tminer.py`` and ``_tminer_*.py``, sorted."""
    return sorted([folder / "tminer.py", *folder.glob("_tminer_*.py")], key=lambda p: p.name)


def code_hash(files: Iterable[Path] | None = None) -> str:
    """12 hex digits of SHA-256 over each file's name and bytes (default: :func:`source_files`)."""
    digest = hashlib.sha256()
    for path in source_files() if files is None else files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def cache_key(detector: object, code: str | None = None) -> str:
    """12 hex digits keying a cached verdict: the detector's settings and the code's hash."""
    code = code_hash() if code is None else code
    return hashlib.sha256(f"{detector!r}\n{code}".encode()).hexdigest()[:12]

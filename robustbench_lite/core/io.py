"""Small file helpers shared by every layer: the cache folder, recipe hashes and atomic writes.

An atomic write goes through a temporary file in the target's folder and a rename, so a reader
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Environment variable naming the cache folder (trained zoo models, priors, verdicts).
CACHE_ENV = "RBL_CACHE_DIR"


def cache_dir() -> Path:
    """``$RBL_CACHE_DIR``, else ``$XDG_CACHE_HOME/robustbench_lite`` (``~/.cache/...``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "robustbench_lite"


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of ``recipe`` as sorted JSON (a cache key)."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: no half-written reports."""
    atomic_write_bytes(Path(path), text.encode())

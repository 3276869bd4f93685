"""Small file helpers shared by every layer: the cache folder, recipe hashes and atomic writes.

An atomic write goes through a temporary file in the target's folder and a rename, so a reader
sees the old file or the new one, never half of one. Only regular files are written: a device,
FIFO, socket, folder or dangling symlink at the path is refused (:class:`OutputPathError`), a
symlink to a regular file is written through (the link stays), and the file gets the mode of
the file it replaces, or the umask's (0644 under umask 022).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robustbench_lite.core.errors import OutputPathError

#: Environment variable naming the cache folder (trained zoo models, priors, verdicts).
CACHE_ENV = "RBL_CACHE_DIR"


def cache_dir() -> Path:
    """``$RBL_CACHE_DIR``, else ``$XDG_CACHE_HOME/robustbench_lite`` (``~/.cache/...``).

    Only the path is computed here; nothing is created. It is refused, with one line naming
    ``RBL_CACHE_DIR``, when it cannot be a folder: no home folder to put it in, or a file where
    it or one of its parents should be (``RBL_CACHE_DIR`` or ``HOME`` pointing at a file).
    Callers that only *cache* (the zoo) treat that error, and any failed write, as "no cache"
    and go on in memory; callers that must store (the results store) report it.
    """
    from robustbench_lite.core.errors import RobustbenchLiteError

    source = CACHE_ENV
    try:
        if os.environ.get(CACHE_ENV):
            path = Path(os.environ[CACHE_ENV]).expanduser()
        elif os.environ.get("XDG_CACHE_HOME"):
            source = "XDG_CACHE_HOME"
            path = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "robustbench_lite"
        else:
            source = "HOME"
            path = Path.home() / ".cache" / "robustbench_lite"
    except (RuntimeError, KeyError) as exc:  # no home folder to expand ~ against
        raise RobustbenchLiteError(
            f"cannot place the cache folder ({exc}); set {CACHE_ENV} to a writable folder"
        ) from None
    for folder in (path, *path.parents):
        try:
            if folder.exists():
                if folder.is_dir():
                    break
                raise RobustbenchLiteError(
                    f"cache folder {path} (from {source}) cannot be created: {folder} is "
                    f"a file; set {CACHE_ENV} to a writable folder"
                )
        except OSError:  # an unreadable parent: leave it to the writer to say
            break
    return path


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of ``recipe`` as sorted JSON (a cache key)."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def zip_inflated_bytes(path: str | Path) -> int | None:
    """The total size a zip archive declares for its members once inflated (bytes), read from
    its directory only; None when ``path`` is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            return sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def not_a_file(path: str | Path) -> str:
    """Why ``path`` cannot be read as an input file: "does not exist", "is a folder, not a
    regular file", "is a character device, not a regular file", ... ("" for a regular file)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    kind = _kind(mode)
    return "" if kind == "a regular file" else f"is {kind}, not a regular file"


def output_target(path: str | Path, *, what: str = "") -> Path:
    """The regular file a write to ``path`` replaces: ``path``, or the file its symlink points at.

    ``path`` must not exist, be a regular file, or be a symlink (chain) to a regular file; its
    nearest existing ancestor must be a folder. Anything else raises :class:`OutputPathError`
    whose message starts with ``what`` (e.g. ``"--report out.json"``). Nothing is written.
    """
    label = what or str(path)
    target = Path(path).expanduser()
    try:
        st: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # ENOTDIR (a parent is a file), ELOOP, ENAMETOOLONG, EACCES...
        if not isinstance(exc, NotADirectoryError):
            raise OutputPathError(f"{label}: cannot use {target} ({exc.strerror})") from None
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(target)
        except OSError:
            raise OutputPathError(
                f"{label} is a symlink to nothing (dangling); remove it or pass another path"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise OutputPathError(
                f"{label} is a symlink to {_kind(st.st_mode)}, not to a regular "
                "file; pass a file path"
            )
        target = Path(os.path.realpath(target))
    elif st is not None and not stat.S_ISREG(st.st_mode):
        hint = f" such as {target}/report.json" if stat.S_ISDIR(st.st_mode) else ""
        raise OutputPathError(
            f"{label} is {_kind(st.st_mode)}, not a regular file; it was left alone, "
            f"pass a file path{hint}"
        )
    for parent in target.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                kind = _kind(os.stat(parent).st_mode) if parent.exists() else "a dangling symlink"
                raise OutputPathError(
                    f"{label}: {parent} is {kind}, not a folder; pick another path"
                )
            break
    return target


def check_output_path(path: str | Path, *, what: str = "") -> Path:
    """:func:`output_target`, then prove the folder it goes to is writable (a probe file is
    created and removed), so a bad path fails before any work rather than after it."""
    label = what or str(path)
    target = output_target(path, what=what)
    folder = next((p for p in target.parents if p.exists()), Path("."))
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:40]}.probe.")
    except OSError as exc:
        raise OutputPathError(
            f"{label}: cannot write in {folder} ({exc.strerror}); pass a writable path"
        ) from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    return target


def _umask() -> int:
    try:  # Linux: read it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Refuses anything but a regular file (see :func:`output_target`); a symlink to a regular
    file is written through. The file keeps the mode of the one it replaces, else gets
    ``0o666 & ~umask``. A failed write raises :class:`OutputPathError` (also an ``OSError``).
    """
    target = output_target(path)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:60]}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)  # mkstemp made it 0600
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        if isinstance(exc, OutputPathError):
            raise
        raise OutputPathError(
            f"cannot write {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: no half-written reports."""
    atomic_write_bytes(Path(path), text.encode())

"""The results store: every finished cell is written at once to SQLite (one transaction each).

A run is identified by a key that hashes the resolved suite, the model's weights, the data, the
seed and the package version. Re-running the same key skips the cells already stored, so a run
killed at any moment (even by SIGKILL) and run again loses at most the cells in flight and
stores none twice (the primary key is ``(run_key, check_id, shard)``). ``fresh=True`` drops
the stored cells of that key first. Finished runs are listed by :meth:`ResultStore.history`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lite.core.errors import ParameterError, RobustbenchLiteError, StoreError

SCHEMA = "robustbench_lite.store/1"
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    run_key TEXT NOT NULL, check_id TEXT NOT NULL, shard INTEGER NOT NULL,
    payload TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (run_key, check_id, shard));
CREATE TABLE IF NOT EXISTS cell_sums (
    run_key TEXT NOT NULL, check_id TEXT NOT NULL, shard INTEGER NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (run_key, check_id, shard));
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_key TEXT NOT NULL, suite TEXT NOT NULL,
    model TEXT NOT NULL, model_fingerprint TEXT NOT NULL, seed INTEGER NOT NULL,
    version TEXT NOT NULL, finished REAL NOT NULL, passed INTEGER NOT NULL,
    cells_run INTEGER NOT NULL, cells_resumed INTEGER NOT NULL, report TEXT NOT NULL);
"""
#: The tables a store of this schema holds (``sqlite_sequence`` is SQLite's, for AUTOINCREMENT).
_OURS = frozenset({"meta", "cells", "cell_sums", "runs", "sqlite_sequence"})


@dataclass(frozen=True)
class RunRow:
    """One finished run in the history."""

    id: int
    suite: str
    model: str
    model_fingerprint: str
    seed: int
    version: str
    finished: float
    passed: bool
    cells_run: int
    cells_resumed: int
    report: str


class ResultStore:
    """A SQLite file of cell results and finished runs; use as a context manager.

    Nothing in the file is trusted: a file that is not a store of this schema is refused before
    anything is written to it (even one with a ``meta`` table), and every cell read back must
    match the SHA-256 written with it, so an edited or damaged row is a :class:`StoreError`
    (CLI exit 2, naming the file and ``--fresh``), never a crash in the merge.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        try:
            existed, regular, folder = self.path.exists(), self.path.is_file(), self.path.is_dir()
        except OSError as exc:  # a name too long, a folder we may not enter
            raise StoreError(self._unopenable(False, exc)) from None
        if existed and not regular:  # a folder, a device, a FIFO, a socket
            what = "a folder" if folder else "not a regular file"
            raise StoreError(f"results store {self.path} is {what}; pass a file path with --db")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=30)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StoreError(self._unopenable(existed, exc)) from None
        try:
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(self._unopenable(existed, exc)) from None
        except StoreError:
            self._db.close()
            raise

    def _unopenable(self, existed: bool, exc: Exception) -> str:
        """Why the file cannot be used, and the fix: delete it only if it exists."""
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
        if existed:
            return (
                f"results store {self.path} is not a readable SQLite file ({reason}); "
                "delete it or pass another --db"
            )
        return (
            f"cannot create results store {self.path} ({reason}); pass --db PATH in a "
            f"writable folder or --no-db{_cache_hint(self.path)}"
        )

    def _check_schema(self) -> None:
        """Refuse (before any write) a SQLite file that is not a store of :data:`SCHEMA`;
        create the tables in a new or empty one."""
        tables = self._tables()
        if tables:
            self._require_ours(tables)
        # one transaction: a concurrent opener sees no tables or all of them with the schema row
        self._db.executescript(
            f"BEGIN IMMEDIATE; {_TABLES} INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA}');"
            " COMMIT;"
        )
        self._require_ours(self._tables())  # another program may have won a race for the file

    def _tables(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _require_ours(self, tables: set[str]) -> None:
        """Raise unless ``tables`` and the ``meta`` schema row are a store's (read only)."""
        found = None
        if "meta" in tables and tables <= _OURS:
            try:
                row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            except sqlite3.OperationalError:  # a meta table with other columns
                row = None
            found = None if row is None else row[0]
        if not (isinstance(found, str) and found.startswith(SCHEMA.rpartition("/")[0] + "/")):
            raise StoreError(
                f"{self.path} is a SQLite file of another program (tables "
                f"{_listed(tables)}); it was left unchanged; pass another --db"
            )
        if found != SCHEMA:
            raise StoreError(
                f"{self.path} holds store schema {_short(found)}, this version reads "
                f"{SCHEMA!r}; pass another --db"
            )

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"results store {self.path} failed ({exc}); delete it or pass another --db"
            ) from None

    def done(self, run_key: str) -> dict[tuple[str, int], dict[str, Any]]:
        """Stored payloads of ``run_key`` by ``(check_id, shard)``; each checked against the
        SHA-256 written with it (:meth:`put`): a damaged row raises :class:`StoreError`. A cell
        without a checksum (written before there were any) is left out, so it is run again."""
        rows = self._guard(
            lambda: self._db.execute(
                "SELECT c.check_id, c.shard, c.payload, s.sha256 FROM cells c LEFT JOIN cell_sums s"
                " ON s.run_key = c.run_key AND s.check_id = c.check_id AND s.shard = c.shard"
                " WHERE c.run_key=?",
                (run_key,),
            ).fetchall()
        )
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for check_id, shard, text, digest in rows:
            problem = _cell_problem(run_key, check_id, shard, text, digest)
            if problem == "":  # written before cells had checksums: computed again, not trusted
                continue
            if problem is None:
                payload = json.loads(text)
                if isinstance(payload, dict) and _seconds(payload.get("elapsed_s")):
                    out[(check_id, shard)] = payload
                    continue
                problem = "its payload is not a cell result"
            raise StoreError(
                f"results store {self.path} has a damaged cell (check {_short(check_id)} shard "
                f"{_short(shard)}: {problem}); rerun with --fresh to recompute this run's cells, "
                "or delete the file"
            )
        return out

    def put(self, run_key: str, check_id: str, shard: int, payload: dict[str, Any]) -> None:
        """Store one cell and its SHA-256 in one transaction (idempotent for a given cell)."""
        text = json.dumps(payload, allow_nan=True)
        digest = _digest(run_key, check_id, shard, text)

        def write() -> None:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?)",
                    (run_key, check_id, shard, text, time.time()),
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO cell_sums VALUES (?, ?, ?, ?)",
                    (run_key, check_id, shard, digest),
                )

        self._guard(write)

    def forget(self, run_key: str) -> int:
        """Drop the stored cells of ``run_key`` (``--fresh``); returns how many were dropped."""

        def drop() -> int:
            with self._db:
                self._db.execute("DELETE FROM cell_sums WHERE run_key=?", (run_key,))
                return self._db.execute("DELETE FROM cells WHERE run_key=?", (run_key,)).rowcount

        return int(self._guard(drop))

    def record_run(
        self, run_key: str, report: Any, *, fingerprint: str, seed: int, run: int, resumed: int
    ) -> None:
        """Append a finished run (its report JSON) to the history."""
        from robustbench_lite.core.version import __version__

        def write() -> None:
            with self._db:
                self._db.execute(
                    "INSERT INTO runs (run_key, suite, model, model_fingerprint, seed, version, finished,"
                    " passed, cells_run, cells_resumed, report) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        run_key,
                        report.suite,
                        report.model,
                        fingerprint,
                        seed,
                        __version__,
                        time.time(),
                        int(report.passed),
                        run,
                        resumed,
                        report.to_json(),
                    ),
                )

        self._guard(write)

    def history(
        self, *, model: str | None = None, suite: str | None = None, limit: int = 50
    ) -> list[RunRow]:
        """Finished runs, newest first, optionally of one model (name or fingerprint prefix);
        at most ``limit`` (>= 1). A row of the wrong types raises :class:`StoreError`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ParameterError("limit", f"{limit!r} must be a whole number >= 1, e.g. 20")
        rows = self._guard(
            lambda: self._db.execute(
                "SELECT id, suite, model, model_fingerprint, seed, version, finished, passed, cells_run,"
                " cells_resumed, report FROM runs ORDER BY id DESC"
            ).fetchall()
        )
        out = [self._run_row(r) for r in rows]
        if model:
            out = [r for r in out if r.model == model or r.model_fingerprint.startswith(model)]
        if suite:
            out = [r for r in out if r.suite == suite]
        return out[:limit]

    def _run_row(self, row: tuple[Any, ...]) -> RunRow:
        """One ``runs`` row, its columns checked against :class:`RunRow`'s types (SQLite keeps
        whatever was written) and its report checked to be a JSON object."""
        kinds = (int, str, str, str, int, str, float, int, int, int, str)
        names = [f.name for f in dataclasses.fields(RunRow)]
        bad = "row" if len(row) != len(kinds) else None
        bad = bad or next((n for n, k, v in zip(names, kinds, row) if not _typed(v, k)), None)
        if bad is None:
            try:
                bad = None if isinstance(json.loads(row[10]), dict) else "report"
            except (ValueError, RecursionError):
                bad = "report"
        if bad is not None:
            raise StoreError(
                f"results store {self.path} has a damaged run (id {_short(row[0])}: its "
                f"{bad} is not what this version wrote); delete the file or pass another --db"
            )
        return RunRow(
            id=row[0],
            suite=row[1],
            model=row[2],
            model_fingerprint=row[3],
            seed=row[4],
            version=row[5],
            finished=float(row[6]),
            passed=bool(row[7]),
            cells_run=row[8],
            cells_resumed=row[9],
            report=row[10],
        )


def _typed(value: Any, kind: type) -> bool:
    """``value`` is a ``kind`` as a run row holds it (an int is a fine float; no bools, NaN)."""
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def _digest(run_key: str, check_id: str, shard: int, text: str) -> str:
    """The SHA-256 that binds a payload to its cell (a row moved to another cell fails too)."""
    return hashlib.sha256(f"{run_key}\0{check_id}\0{shard}\0{text}".encode()).hexdigest()


def _cell_problem(run_key: str, check_id: Any, shard: Any, text: Any, digest: Any) -> str | None:
    """What is wrong with a stored cell row; None when it is what :meth:`put` wrote, ``""``
    when it has the right types but no checksum (a row of an earlier version)."""
    if not isinstance(check_id, str) or isinstance(shard, bool) or not isinstance(shard, int):
        return "its key has the wrong types"
    if not isinstance(text, str):
        return "its payload is not text"
    if digest is None:
        return ""
    if digest != _digest(run_key, check_id, shard, text):
        return "its payload does not match its checksum"
    return None


def _seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _listed(names: set[str], limit: int = 5) -> str:
    shown = sorted(names)[:limit]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{', '.join(_short(n) for n in shown)}{more}"


def _cache_hint(path: Path) -> str:
    """``; or set RBL_CACHE_DIR ...`` when ``path`` lies in the cache folder."""
    from robustbench_lite.core.io import CACHE_ENV, cache_dir

    try:
        inside = path.resolve().is_relative_to(cache_dir().resolve())
    except (OSError, RuntimeError, RobustbenchLiteError):
        inside = True
    return f", or set {CACHE_ENV} to a writable folder" if inside else ""


def default_db_path(report: str | Path | None) -> Path:
    """Beside the report (``REPORT.sqlite``) when there is one, else in the cache folder."""
    if report:
        p = Path(report).expanduser()
        return p.with_name(p.name + ".sqlite")
    from robustbench_lite.core.io import cache_dir

    return cache_dir() / "results.sqlite"

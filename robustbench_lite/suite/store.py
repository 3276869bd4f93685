"""The results store: every finished cell is written at once to SQLite (one transaction each).

A run is identified by a key that hashes the resolved suite, the model's weights, the data, the
seed and the package version. Re-running the same key skips the cells already stored, so a run
killed at any moment (even by SIGKILL) and run again loses at most the cells in flight and
stores none twice (the primary key is ``(run_key, check_id, shard)``). ``fresh=True`` drops
the stored cells of that key first. Finished runs are listed by :meth:`ResultStore.history`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lite.core.errors import StoreError

SCHEMA = "robustbench_lite.store/1"
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    run_key TEXT NOT NULL, check_id TEXT NOT NULL, shard INTEGER NOT NULL,
    payload TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (run_key, check_id, shard));
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_key TEXT NOT NULL, suite TEXT NOT NULL,
    model TEXT NOT NULL, model_fingerprint TEXT NOT NULL, seed INTEGER NOT NULL,
    version TEXT NOT NULL, finished REAL NOT NULL, passed INTEGER NOT NULL,
    cells_run INTEGER NOT NULL, cells_resumed INTEGER NOT NULL, report TEXT NOT NULL);
"""


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
    """A SQLite file of cell results and finished runs; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a folder; pass a file path with --db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30)
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"results store {self.path} is not a readable SQLite file ({exc}); "
                "delete it or pass another --db"
            ) from None

    def _check_schema(self) -> None:
        tables = {
            r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if tables and "meta" not in tables:
            raise StoreError(
                f"{self.path} is a SQLite file of another program (tables {sorted(tables)}); "
                "pass another --db"
            )
        with self._db:
            self._db.executescript(_TABLES)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))
            elif row[0] != SCHEMA:
                raise StoreError(
                    f"{self.path} holds store schema {row[0]!r}, this version reads {SCHEMA!r}; "
                    "pass another --db"
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
        """Stored payloads of ``run_key`` by ``(check_id, shard)``."""
        rows = self._guard(
            lambda: self._db.execute(
                "SELECT check_id, shard, payload FROM cells WHERE run_key=?", (run_key,)
            ).fetchall()
        )
        return {(c, int(s)): json.loads(p) for c, s, p in rows}

    def put(self, run_key: str, check_id: str, shard: int, payload: dict[str, Any]) -> None:
        """Store one cell in its own transaction (idempotent for a given cell)."""
        text = json.dumps(payload, allow_nan=True)

        def write() -> None:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?)",
                    (run_key, check_id, shard, text, time.time()),
                )

        self._guard(write)

    def forget(self, run_key: str) -> int:
        """Drop the stored cells of ``run_key`` (``--fresh``); returns how many were dropped."""

        def drop() -> int:
            with self._db:
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
        """Finished runs, newest first, optionally of one model (name or fingerprint prefix)."""
        rows = self._guard(
            lambda: self._db.execute(
                "SELECT id, suite, model, model_fingerprint, seed, version, finished, passed, cells_run,"
                " cells_resumed, report FROM runs ORDER BY id DESC"
            ).fetchall()
        )
        out = [RunRow(*r[:7], bool(r[7]), *r[8:]) for r in rows]  # type: ignore[call-arg]
        if model:
            out = [r for r in out if r.model == model or r.model_fingerprint.startswith(model)]
        if suite:
            out = [r for r in out if r.suite == suite]
        return out[:limit]


def default_db_path(report: str | Path | None) -> Path:
    """Beside the report (``REPORT.sqlite``) when there is one, else in the cache folder."""
    if report:
        p = Path(report).expanduser()
        return p.with_name(p.name + ".sqlite")
    from robustbench_lite.core.io import cache_dir

    return cache_dir() / "results.sqlite"

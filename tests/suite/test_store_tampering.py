"""Issue 21: a tampered, foreign or impossible results store is one line and exit 2, naming the
file and the fix; nothing is written into a file that is not ours."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import ParameterError, StoreError
from robustbench_lite.suite.store import ResultStore

SUITE = """\
version: 1
name: tamper
seed: 1
shard_size: 5
model: {checkpoint: zoo:digits-mlp}
data: {source: digits, n: 10}
checks:
  - {id: fgsm, attack: fgsm, threat: "linf:0.1", expect: {robust_accuracy: ">= 0"}}
"""


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A suite and a store holding one finished run of it."""
    folder = tmp_path_factory.mktemp("store")
    suite, db = folder / "s.yaml", folder / "r.sqlite"
    suite.write_text(SUITE)
    rbl.run_suite(suite, db=db)
    return suite, db


def _copy(db: Path, tmp_path: Path, *sql: str) -> Path:
    out = tmp_path / "t.sqlite"
    shutil.copy(db, out)
    with sqlite3.connect(out) as con:
        for statement in sql:
            con.execute(statement)
    return out


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("UPDATE cells SET payload='{bad' WHERE shard=0", "does not match its checksum"),
        ("UPDATE cells SET payload='[]' WHERE shard=0", "does not match its checksum"),
        (
            'UPDATE cells SET payload=\'{"clean_correct": 5, "elapsed_s": 1}\' WHERE shard=0',
            "does not match its checksum",
        ),
        ("UPDATE cells SET shard='x' WHERE shard=0", "key has the wrong types"),
        ("UPDATE cells SET payload=x'00ff' WHERE shard=0", "payload is not text"),
        ("UPDATE cell_sums SET sha256='0' WHERE shard=1", "does not match its checksum"),
    ],
)
def test_tampered_cells_are_exit_2_naming_the_store_and_fresh(
    stored: tuple[Path, Path],
    tmp_path: Path,
    sql: str,
    problem: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    suite, db = stored
    bad = _copy(db, tmp_path, sql)
    assert main(["run", str(suite), "--db", str(bad), "-q"]) == 2
    err = _one_line(capsys)
    assert str(bad) in err and problem in err and "--fresh" in err and "delete" in err, err
    assert main(["run", str(suite), "--db", str(bad), "-q", "--fresh"]) == 0  # the way out


def test_cells_without_a_checksum_are_computed_again(
    stored: tuple[Path, Path], tmp_path: Path
) -> None:
    suite, db = stored
    legacy = _copy(db, tmp_path, "DROP TABLE cell_sums")  # a store of an earlier version
    report = rbl.run_suite(suite, db=legacy)
    assert report.env["cells_resumed"] == 0 and report.passed
    assert rbl.run_suite(suite, db=legacy).env["cells_resumed"] == 2


@pytest.mark.parametrize(
    ("sql", "column"),
    [
        ("UPDATE runs SET report='nope'", "report"),
        ("UPDATE runs SET report='[1]'", "report"),
        ("UPDATE runs SET finished='abc'", "finished"),
        ("UPDATE runs SET seed=1.5", "seed"),
        ("UPDATE runs SET suite=x'00'", "suite"),
    ],
)
def test_tampered_runs_are_exit_2_in_history(
    stored: tuple[Path, Path],
    tmp_path: Path,
    sql: str,
    column: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = _copy(stored[1], tmp_path, sql)
    assert main(["history", "--db", str(bad)]) == 2
    err = _one_line(capsys)
    assert str(bad) in err and f"its {column} is not what this version wrote" in err, err


def test_history_refuses_non_positive_limits(
    stored: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(stored[1])
    for limit in ("-1", "0", "x"):
        with pytest.raises(SystemExit) as info:
            main(["history", "--db", db, "--limit", limit])
        assert info.value.code == 2
        _one_line(capsys)
    assert main(["history", "--db", db, "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if "tamper" in line]) == 1
    with ResultStore(db) as store, pytest.raises(ParameterError, match="limit"):
        store.history(limit=-1)


@pytest.mark.parametrize(
    "make",
    [
        "CREATE TABLE meta (k TEXT, v TEXT)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); "
        "INSERT INTO meta VALUES ('schema', 'someone-else/3')",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); "
        "INSERT INTO meta VALUES ('schema', 'robustbench_lite.store/1'); CREATE TABLE mine (x)",
    ],
)
def test_a_foreign_sqlite_file_with_a_meta_table_is_left_unchanged(
    tmp_path: Path, make: str, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as con:
        con.executescript(make)
    before = hashlib.sha256(foreign.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match="another program"):
        ResultStore(foreign)
    assert main(["history", "--db", str(foreign)]) == 2
    assert "another program" in _one_line(capsys)
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == before
    with sqlite3.connect(foreign) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "cells" not in tables and "runs" not in tables


def test_a_store_that_cannot_be_created_is_not_told_to_delete_itself(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for path in (tmp_path / "afile" / "r.sqlite", Path("/proc/rbl-no-such-store.sqlite")):
        with pytest.raises(StoreError) as info:
            ResultStore(path)
        message = str(info.value)
        assert "cannot create results store" in message and "delete" not in message, message
        assert "--no-db" in message and not path.exists()
    existing = tmp_path / "junk.sqlite"
    existing.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="delete it or pass another --db"):
        ResultStore(existing)
    with pytest.raises(StoreError, match="not a regular file"):
        ResultStore("/dev/null")

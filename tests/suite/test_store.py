"""The SQLite results store: resume, --fresh, history, bad files, and a real SIGKILL mid-run."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import StoreError
from robustbench_lite.report.formats import comparable
from robustbench_lite.suite.store import ResultStore

CLI = [sys.executable, "-P", "-m", "robustbench_lite"]
SUITE = """\
version: 1
name: resume
seed: 5
shard_size: 4
model: {checkpoint: zoo:digits-mlp}
data: {source: digits, n: 40}
checks:
  - {id: pgd, attack: pgd, params: {steps: 6}, threat: "linf:0.1", expect: {robust_accuracy: ">= 0"}}
  - {id: fgsm, attack: fgsm, threat: "l2:1", expect: {robust_accuracy: ">= 0"}}
"""
TOTAL_CELLS = 20


def strip(doc: dict[str, Any]) -> dict[str, Any]:
    """A report JSON dict without timings and environment (as report_formats.comparable)."""
    doc = json.loads(json.dumps(doc))
    doc.pop("env", None)
    for check in doc["checks"]:
        check.pop("elapsed_s", None)
        check["detail"].pop("timing", None)
        for cell in check["detail"].get("cells", []):
            cell.pop("elapsed_s", None)
    return doc


def count_cells(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_rerun_resumes_and_fresh_recomputes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.replace("n: 40", "n: 8"))
    db = tmp_path / "r.sqlite"
    first = rbl.run_suite(path, db=db)
    assert first.env["cells_resumed"] == 0 and first.env["cells"] == 4
    second = rbl.run_suite(path, db=db)
    assert second.env["cells_resumed"] == 4 and comparable(second) == comparable(first)
    path.write_text(
        SUITE.replace("n: 40", "n: 8").replace(
            '">= 0"}}\n  - {id: fgsm', '">= 0.99"}}\n  - {id: fgsm'
        )
    )
    edited = rbl.run_suite(path, db=db)  # new expectations reuse the stored cells
    assert edited.env["cells_resumed"] == 4 and not edited.results[0].passed
    fresh = rbl.run_suite(path, db=db, fresh=True)
    assert fresh.env["cells_resumed"] == 0
    other_seed = rbl.run_suite(path, db=db, seed=6)
    assert other_seed.env["cells_resumed"] == 0
    with ResultStore(db) as store:
        runs = store.history(model="zoo:digits-mlp")
    assert len(runs) == 5 and [r.cells_resumed for r in runs] == [0, 0, 4, 4, 0]
    assert main(["history", "--db", str(db), "--model", "zoo:digits-mlp"]) == 0
    out = capsys.readouterr().out
    assert out.count("resume") == 5 and "pgd=" in out
    verdicts = [line.split()[8] for line in out.splitlines()[2:] if line.strip()]
    assert verdicts[2] == "fail" and set(verdicts) <= {"pass", "fail", "measured"}, out
    assert main(["history", "--db", str(db), "--model", "zoo:never-run"]) == 0
    assert capsys.readouterr().out.startswith("no past runs of model zoo:never-run in ")


#: Runs the CLI and SIGKILLs its own process right after the KILL_AFTER-th cell is committed:
#: the kill lands at the same point of the run however loaded the machine is.
KILL_AFTER = 3
SELF_KILLING_CLI = f"""
import os, signal, sys
from robustbench_lite.suite import store
put, stored = store.ResultStore.put, []
def put_then_die(self, *args, **kwargs):
    put(self, *args, **kwargs)
    stored.append(1)
    if len(stored) == {KILL_AFTER}:
        os.kill(os.getpid(), signal.SIGKILL)
store.ResultStore.put = put_then_die
from robustbench_lite.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_mid_run_then_rerun_gives_the_same_report(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    reference = strip(rbl.run_suite(path).to_dict())
    db, report = tmp_path / "r.sqlite", tmp_path / "report.json"
    args = ["run", str(path), "--db", str(db), "--report", str(report), "--quiet"]
    killed = subprocess.run(
        [sys.executable, "-P", "-c", SELF_KILLING_CLI, *args], capture_output=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert count_cells(db) == KILL_AFTER < TOTAL_CELLS
    assert not report.exists() and not list(tmp_path.glob(".report.json.*"))  # nothing half-written
    rerun = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed = json.loads(report.read_text())
    assert resumed["env"]["cells_resumed"] == KILL_AFTER
    assert strip(resumed) == reference
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT check_id || '/' || shard) FROM cells"
        ).fetchone()
    assert rows == (TOTAL_CELLS, TOTAL_CELLS)  # none lost, none duplicated


@pytest.mark.parametrize("kind", ["random", "foreign", "folder"])
def test_bad_store_files_are_one_line_exit_2(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "bad.sqlite"
    if kind == "random":
        db.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "foreign":
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE invoices (id INTEGER)")
    else:
        db.mkdir()
    with pytest.raises(StoreError):
        ResultStore(db)
    report = tmp_path / "out.json"
    assert main(["run", "builtin:smoke", "--db", str(db), "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(db) in err and "--db" in err, err
    assert not report.exists()

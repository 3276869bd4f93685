"""Hostile files and paths through the console script: each refusal is exit 2, one line on
stderr, no traceback, nothing run or written, and bounded memory (the child's peak RSS).

``CASES`` is also the table of the issue's closing note (command, exit, message, peak MB).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from archs_for_tests import TinyNet
from hostile_files import malicious_torchscript, zip_bomb_checkpoint
from resource_helpers import cli_argv, peak_mb

from robustbench_lite.cli.main import main

BIN = Path(sys.executable).parent
SCRIPT = BIN / "robustbench-lite"
TESTS = Path(__file__).resolve().parents[1]
ZOO = ["--model", "zoo:digits-cnn"]
PEAK_LIMIT_MB = 1000  # a fresh interpreter with torch is ~250 MB


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float
    wall_s: float


def measured(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run the CLI; its exit code, output and peak RSS (the child's own, see resource_helpers)."""
    peak_file = tempfile.mktemp(prefix="rbl-peak-")  # noqa: S306 - the child creates it
    full_env = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "RBL_DEBUG": "",
        "RBL_TEST_PEAK_FILE": peak_file,
        **(env or {}),
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cli_argv(args), stdout=out, stderr=err, env=full_env, cwd=cwd)
        killer = threading.Timer(300, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Run(
            args,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            peak_mb(peak_file, usage.ru_maxrss),
            wall,
        )


def _state_dict(tmp: Path) -> str:
    path = tmp / "tiny.pt"
    torch.save(TinyNet().state_dict(), path)
    return str(path)


def _trusting_suite(tmp: Path) -> str:
    archive, _ = malicious_torchscript(tmp)
    path = tmp / "rb_trust.yaml"
    path.write_text(
        "version: 1\nname: asks\n"
        f"model: {{checkpoint: {archive.name}, trust_checkpoint: true, input_shape: [1, 8, 8]}}\n"
        "data: {source: digits, n: 8}\nchecks:\n  - {id: clean, expect: {}}\n"
    )
    return str(path)


def _bomb(tmp: Path) -> str:
    path = tmp / "bomb.pt"
    zip_bomb_checkpoint(path, 3_000_000_000)
    return str(path)


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "fifo.json")
    return str(tmp / "fifo.json")


def _folder(tmp: Path) -> str:
    (tmp / "out").mkdir()
    return str(tmp / "out")


def _dangling(tmp: Path) -> str:
    (tmp / "dangling.json").symlink_to(tmp / "nowhere.json")
    return str(tmp / "dangling.json")


def _store_fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "r.json.sqlite")
    return str(tmp / "r.json")


SMALL_RUN = ["--n", "8", "--quick"]
# name, args built in a fresh folder, environment, expected stderr fragment
CASES: list[tuple[str, Callable[[Path], list[str]], dict[str, str], str]] = [
    (
        "torchscript-untrusted",
        lambda t: ["evaluate", str(malicious_torchscript(t)[0]), *SMALL_RUN],
        {},
        "is a TorchScript archive, whose scripted code runs while it loads",
    ),
    (
        "suite-asks-for-trust",
        lambda t: ["run", _trusting_suite(t), "--no-db"],
        {},
        "asks for trust_checkpoint",
    ),
    (
        "arch-os-abort",
        lambda t: [
            "attack",
            "pgd",
            "--model",
            _state_dict(t),
            "--arch",
            "os:abort",
            "--threat",
            "linf:0.1",
        ],
        {},
        "so it was not called",
    ),
    (
        "arch-mkdtemp",
        lambda t: [
            "attack",
            "pgd",
            "--model",
            _state_dict(t),
            "--arch",
            "tempfile:mkdtemp",
            "--threat",
            "linf:0.1",
        ],
        {"TMPDIR": "{tmp}/tmpdir"},
        "the function mkdtemp, with no return annotation, so it was not called",
    ),
    (
        "zip-bomb-3GB",
        lambda t: [
            "attack",
            "pgd",
            "--model",
            _bomb(t),
            "--arch",
            "archs_for_tests:TinyNet",
            "--threat",
            "linf:0.1",
        ],
        {},
        "refused before inflating",
    ),
    (
        "run-report-dev-null",
        lambda t: ["run", "builtin:smoke", *ZOO, *SMALL_RUN, "--report", "/dev/null"],
        {},
        "/dev/null is a character device, not a regular file",
    ),
    (
        "evaluate-report-dev-null",
        lambda t: ["evaluate", "zoo:digits-cnn", *SMALL_RUN, "--report", "/dev/null"],
        {},
        "/dev/null is a character device",
    ),
    (
        "attack-report-dev-null",
        lambda t: ["attack", "pgd", *ZOO, "--threat", "linf:0.1", "--report", "/dev/null"],
        {},
        "/dev/null is a character device",
    ),
    (
        "evaluate-report-fifo",
        lambda t: ["evaluate", "zoo:digits-cnn", *SMALL_RUN, "--report", _fifo(t)],
        {},
        "is a FIFO, not a regular file",
    ),
    (
        "run-report-folder",
        lambda t: ["run", "builtin:smoke", *ZOO, *SMALL_RUN, "--report", _folder(t)],
        {},
        "is a folder, not a regular file",
    ),
    (
        "attack-report-dangling-symlink",
        lambda t: ["attack", "pgd", *ZOO, "--threat", "linf:0.1", "--report", _dangling(t)],
        {},
        "is a symlink to nothing (dangling)",
    ),
    (
        "run-report-unwritable",
        lambda t: ["run", "builtin:smoke", *ZOO, *SMALL_RUN, "--report", "/proc/rbl-report.json"],
        {},
        "cannot write in /proc",
    ),
    (
        "run-store-beside-report-is-fifo",
        lambda t: ["run", "builtin:smoke", *ZOO, *SMALL_RUN, "--report", _store_fifo(t)],
        {},
        "results store",
    ),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Run]]:
    """Every case, two at a time (each is a fresh interpreter importing torch)."""

    def one(name: str, make: Callable[[Path], list[str]], env: dict[str, str]) -> tuple[Path, Run]:
        tmp = tmp_path_factory.mktemp(name)
        (tmp / "tmpdir").mkdir()
        args = make(tmp)
        return tmp, measured(args, cwd=tmp, env={k: v.format(tmp=tmp) for k, v in env.items()})

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(one, name, make, env) for name, make, env, _ in CASES}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize(
    ("name", "needle"), [(c[0], c[3]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_input_is_one_line_exit_2(
    runs: dict[str, tuple[Path, Run]], name: str, needle: str
) -> None:
    tmp, run = runs[name]
    assert run.returncode == 2, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("robustbench-lite: error: "), run.stderr
    assert needle in lines[0] and "Traceback" not in run.stderr
    assert run.peak_mb < PEAK_LIMIT_MB, f"{name}: peak RSS {run.peak_mb:.0f} MB"
    assert not (tmp / "PWNED").exists(), "a refused file ran code"
    assert list((tmp / "tmpdir").iterdir()) == [], "a refused --arch was called"
    assert not [p for p in tmp.rglob("*") if p.suffix in (".json", ".sqlite") and p.is_file()]
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and not Path("/dev/null.sqlite").exists()


def test_report_paths_fail_before_any_model_work(runs: dict[str, tuple[Path, Run]]) -> None:
    """A refused report path costs an interpreter start, not a run (the run itself takes longer)."""
    for name in ("run-report-dev-null", "evaluate-report-fifo", "run-report-unwritable"):
        _, run = runs[name]
        assert run.stdout == "" and run.wall_s < 30, (name, run.wall_s)


def test_trust_checkpoint_grants_what_the_suite_asks(tmp_path: Path) -> None:
    run = measured(
        ["run", _trusting_suite(tmp_path), "--no-db", "--trust-checkpoint"], cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "PWNED").exists()  # granted by the caller, the archive loaded


def test_report_through_a_symlink_keeps_the_link_and_the_umask_mode(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real.name)
    fresh = tmp_path / "fresh.json"
    for report in (link, fresh):
        out = subprocess.run(
            ["sh", "-c", 'umask 022 && exec "$@"', "sh", str(SCRIPT), "evaluate", "zoo:digits-cnn",
             *SMALL_RUN, "--report", str(report), "--quiet"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert real.read_text().startswith("check ") or "clean" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # a rewrite keeps the mode
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # a new report gets the umask's


SUITE = """\
version: 1
name: keep
model: {checkpoint: zoo:digits-cnn}
data: {source: digits, n: 8}
checks:
  - {id: clean, expect: {clean_accuracy: ">= 0.5"}}
"""


def test_report_failing_after_the_run_keeps_the_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    report, db = tmp_path / "r.json", tmp_path / "r.sqlite"

    def fail(path: object, text: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("robustbench_lite.core.io.write_atomic", fail)
    code = main(["run", str(suite), "--report", str(report), "--db", str(db)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and "could not be written (Input/output error)" in lines[0]
    assert f"kept in the results store {db}" in lines[0]
    assert out.startswith("check ") and "clean" in out  # and the table is on stdout
    monkeypatch.undo()  # a rerun with a writable report resumes from the store
    assert main(["run", str(suite), "--report", str(report), "--db", str(db), "--quiet"]) == 0
    assert '"cells_resumed": 1' in report.read_text()

"""The installed console script: listings, the attack report, exit codes, and bad input.

Every bad input must give exactly one line on stderr naming the problem, exit code 2, no
traceback, and no report file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from archs_for_tests import TinyNet

import robustbench_lite as rbl

BIN = Path(sys.executable).parent
SCRIPT = BIN / "robustbench-lite"
TESTS = Path(__file__).resolve().parents[1]
ARCH = "archs_for_tests:TinyNet"
ATTACK = ["attack", "pgd", "--param", "steps=3", "--n", "8"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "RBL_DEBUG": ""}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_console_script_is_installed() -> None:
    assert SCRIPT.is_file(), f"console script missing next to {sys.executable}"


def test_list_attacks_one_name_per_line() -> None:
    out = cli("list", "attacks")
    assert out.returncode == 0, out.stderr
    names = out.stdout.splitlines()
    # this process may hold attacks registered by other tests; the CLI runs in a fresh one
    assert names == sorted(names) and {"pgd", "fgsm"} <= set(names) <= set(rbl.list_attacks())
    pattern = cli("list", "attacks", "pg*")
    assert pattern.stdout.splitlines() == rbl.list_attacks("pg*")


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-P", "-m", "robustbench_lite", "list", "zoo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert {"digits-mlp", "digits-cnn", "digits-cnn-at"} <= set(out.stdout.split())


def test_zoo_list_shows_accuracy_and_recipe() -> None:
    rbl.load_model("zoo:digits-cnn")  # trained in this cache
    out = cli("zoo", "list")
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("digits-cnn "))
    info = rbl.zoo.cached_info("digits-cnn")
    assert info is not None and f"{info['clean_accuracy']:.4f}" in row
    assert json.loads(row[row.index("{") :]) == dict(rbl.zoo.zoo_entry("digits-cnn").recipe)


def test_attack_report(tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.json"
    out = cli(
        *ATTACK,
        "--model",
        "zoo:digits-cnn",
        "--threat",
        "linf:0.1",
        "--seed",
        "1",
        "--report",
        str(report),
    )
    assert out.returncode == 0, out.stderr
    assert "pgd-linf:0.1" in out.stdout and "clean_acc" in out.stdout
    data = json.loads(report.read_text())
    assert data["schema"] == "robustbench_lite.report/1"
    assert data["model"] == "zoo:digits-cnn" and data["passed"] is True
    (check,) = data["checks"]
    assert {"id", "kind", "component", "threat", "passed", "values", "elapsed_s"} <= set(check)
    assert (check["kind"], check["component"], check["threat"]) == ("attack", "pgd", "linf:0.1")
    values = check["values"]
    assert 0.0 <= values["robust_accuracy"] <= values["clean_accuracy"] <= 1.0
    assert 0.0 <= values["success_rate"] <= 1.0 and check["elapsed_s"] >= 0
    assert data["env"]["torch"] == torch.__version__ and data["env"]["seed"] == 1
    # the report agrees with the Python API run the same way
    x, y = rbl.load_data("digits", n=8)
    api = rbl.create_attack("pgd", steps=3)(
        rbl.load_model("zoo:digits-cnn"), x, y, "linf:0.1", seed=1
    )
    assert values["robust_accuracy"] == pytest.approx(api.robust_accuracy)


# --------------------------------------------------------------------------------- bad input
def _ckpt(tmp: Path, kind: str) -> Path:
    path = tmp / f"{kind}.pt"
    torch.manual_seed(0)
    if kind == "good":
        torch.save(TinyNet().state_dict(), path)
    elif kind == "truncated":
        torch.save(TinyNet().state_dict(), path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "misfit":
        torch.save({"fc.weight": torch.zeros(10, 64), "head.bias": torch.zeros(10)}, path)
    elif kind == "nan":
        net = TinyNet()
        with torch.no_grad():
            net.fc.bias.fill_(float("nan"))
        torch.save(net.state_dict(), path)
    elif kind == "evil":
        torch.save({"fc.weight": _Touch(tmp / "PWNED")}, path)
    return path


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _npz(tmp: Path) -> str:
    path = tmp / "rgb.npz"
    np.savez(path, x=np.zeros((10, 3, 8, 8), dtype=np.float32), y=np.zeros(10, dtype=np.int64))
    return f"npz:{path}"


Args = Callable[[Path], list[str]]
ZOO = ["--model", "zoo:digits-cnn", "--threat", "linf:0.1"]
BAD_INPUT: list[tuple[str, Args, str]] = [
    (
        "unknown-attack",
        lambda t: ["attack", "pgdd", *ZOO],
        "unknown attack 'pgdd'; did you mean pgd",
    ),
    (
        "unknown-zoo",
        lambda t: [*ATTACK, "--model", "zoo:digits-cn", "--threat", "linf:0.1"],
        "did you mean digits-cnn",
    ),
    (
        "malformed-threat",
        lambda t: [*ATTACK, "--model", "zoo:digits-cnn", "--threat", "linf:abc"],
        "'abc'",
    ),
    (
        "unknown-norm",
        lambda t: [*ATTACK, "--model", "zoo:digits-cnn", "--threat", "lnf:0.1"],
        "did you mean linf",
    ),
    (
        "negative-eps",
        lambda t: [*ATTACK, "--model", "zoo:digits-cnn", "--threat", "linf:-0.1"],
        ">= 0",
    ),
    (
        "unsupported-threat",
        lambda t: ["attack", "fgsm", "--model", "zoo:digits-cnn", "--threat", "l1:4"],
        "attack fgsm does not support l1/untargeted (threat l1:4); it supports l2/targeted",
    ),
    ("unknown-param", lambda t: [*ATTACK, *ZOO, "--param", "stepz=3"], "did you mean steps"),
    (
        "missing-checkpoint",
        lambda t: [*ATTACK, "--model", str(t / "none.pt"), "--arch", ARCH, "--threat", "linf:0.1"],
        "does not exist",
    ),
    (
        "truncated-checkpoint",
        lambda t: [
            *ATTACK,
            "--model",
            str(_ckpt(t, "truncated")),
            "--arch",
            ARCH,
            "--threat",
            "linf:0.1",
        ],
        "truncated or corrupt",
    ),
    (
        "random-bytes",
        lambda t: [
            *ATTACK,
            "--model",
            str(_ckpt(t, "random")),
            "--arch",
            ARCH,
            "--threat",
            "linf:0.1",
        ],
        "not a readable PyTorch checkpoint",
    ),
    (
        "state-dict-misfit",
        lambda t: [
            *ATTACK,
            "--model",
            str(_ckpt(t, "misfit")),
            "--arch",
            ARCH,
            "--threat",
            "linf:0.1",
        ],
        "missing keys [fc.bias], unexpected keys [head.bias]",
    ),
    (
        "code-running-pickle",
        lambda t: [
            *ATTACK,
            "--model",
            str(_ckpt(t, "evil")),
            "--arch",
            ARCH,
            "--threat",
            "linf:0.1",
        ],
        "can run code",
    ),
    ("data-shape", lambda t: [*ATTACK, *ZOO, "--data", _npz(t)], "does not fit zoo:digits-cnn"),
    (
        "nan-logits",
        lambda t: [
            *ATTACK,
            "--model",
            str(_ckpt(t, "nan")),
            "--arch",
            ARCH,
            "--threat",
            "linf:0.1",
        ],
        "NaN or inf logits",
    ),
    (
        "n-too-large",
        lambda t: [*ATTACK[:-2], *ZOO, "--n", "100000"],
        "n=100000 is larger than digits (540 samples)",
    ),
    ("unknown-dataset", lambda t: [*ATTACK, *ZOO, "--data", "digitz"], "did you mean digits"),
    ("report-is-a-folder", lambda t: [*ATTACK, *ZOO, "--report", str(t)], "is a folder"),
    ("argparse", lambda t: ["attack", "pgd", "--threat", "linf:0.1"], "required: --model"),
]


@pytest.fixture(scope="module")
def bad_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every bad-input command, run concurrently (each is a fresh interpreter importing torch)."""

    def one(case: str, make_args: Args) -> tuple[Path, subprocess.CompletedProcess[str]]:
        tmp = tmp_path_factory.mktemp(case)
        args = make_args(tmp)
        if "--report" not in args:
            args += ["--report", str(tmp / "report.json")]
        return tmp, cli(*args, cwd=tmp)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {case: pool.submit(one, case, make_args) for case, make_args, _ in BAD_INPUT}
        return {case: f.result() for case, f in futures.items()}


@pytest.mark.parametrize(
    ("case", "needle"), [(c[0], c[2]) for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    bad_runs: dict[str, tuple[Path, subprocess.CompletedProcess[str]]], case: str, needle: str
) -> None:
    tmp, out = bad_runs[case]
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("robustbench-lite") and "error" in lines[0]
    assert needle in lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp / "report.json").exists()
    assert not [p for p in tmp.iterdir() if p.suffix == ".json"], "a report was written"
    assert not (tmp / "PWNED").exists(), "a refused checkpoint ran code"


def test_good_checkpoint_with_arch_runs(tmp_path: Path) -> None:
    out = cli(
        *ATTACK, "--model", str(_ckpt(tmp_path, "good")), "--arch", ARCH, "--threat", "l2:0.5"
    )
    assert out.returncode == 0, out.stderr
    assert "pgd-l2:0.5" in out.stdout


def test_internal_error_is_exit_3_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "crash.pt"
    torch.save(TinyNet().state_dict(), path)
    out = cli(
        *ATTACK, "--model", str(path), "--arch", "archs_for_tests:Crashes", "--threat", "linf:0.1"
    )
    assert out.returncode == 3
    assert out.stderr.splitlines() == [
        "robustbench-lite: internal error: ZeroDivisionError: division by zero inside forward "
        "(set RBL_DEBUG=1 for a traceback, and please report it)"
    ]


def test_failed_expectation_is_exit_1(tmp_path: Path) -> None:
    suite = tmp_path / "strict.yaml"
    suite.write_text(
        "version: 1\nname: strict\nseed: 0\nmodel:\n  checkpoint: zoo:digits-mlp\n"
        "data:\n  source: digits\n  n: 40\nchecks:\n  - id: clean\n    expect: {clean_accuracy: '>= 1.01'}\n"
    )
    out = cli("run", str(suite), "--no-db", "-q", "--report", str(tmp_path / "r.json"))
    assert out.returncode == 1, out.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is False and data["checks"][0]["passed"] is False

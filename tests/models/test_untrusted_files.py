"""Hostile model files: a TorchScript archive runs only when the caller trusts it, ``arch`` calls
nothing but an nn.Module builder, and a zip bomb is refused before it inflates."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from hostile_files import malicious_torchscript, zip_bomb_checkpoint
from torch import nn

import robustbench_lite as rbl
from robustbench_lite.models.loading import (
    MAX_BYTES_ENV,
    is_torchscript_archive,
    max_checkpoint_bytes,
    resolve_arch,
)

TESTS = Path(__file__).resolve().parents[1]


def test_malicious_torchscript_runs_nothing_without_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, marker = malicious_torchscript(tmp_path)
    assert is_torchscript_archive(archive)
    calls: list[object] = []
    real_load = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    with pytest.raises(rbl.CheckpointError) as info:
        rbl.load_model(archive)
    msg = str(info.value)
    assert "\n" not in msg and str(archive) in msg and "--trust-checkpoint" in msg
    assert calls == [] and not marker.exists(), "the untrusted archive was loaded"
    with pytest.raises(rbl.CheckpointError, match="is a TorchScript archive, not a state_dict"):
        rbl.load_model(archive, arch="archs_for_tests:TinyNet", trust_checkpoint=True)
    assert calls == [] and not marker.exists()
    # the payload is real: granted trust, loading it writes the file
    rbl.load_model(archive, trust_checkpoint=True)
    assert len(calls) == 1 and marker.exists() and marker.stat().st_size == 64


def test_state_dict_zip_is_not_taken_for_torchscript(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    assert not is_torchscript_archive(path)
    with pytest.raises(rbl.CheckpointError, match="holds no TorchScript program"):
        rbl.load_model(path, trust_checkpoint=True)


def not_annotated():  # type: ignore[no-untyped-def]  # noqa: ANN201
    raise AssertionError("called")


def annotated_int() -> int:
    raise AssertionError("called")


def annotated_net() -> nn.Linear:
    return nn.Linear(64, 10)


class NotAModule:
    def __init__(self) -> None:
        raise AssertionError("called")


@pytest.mark.parametrize(
    ("attr", "needle"),
    [
        ("not_annotated", "with no return annotation"),
        ("annotated_int", "annotated -> int"),
        ("NotAModule", "not an nn.Module subclass"),
    ],
)
def test_arch_calls_only_module_builders(attr: str, needle: str) -> None:
    with pytest.raises(rbl.CheckpointError) as info:
        resolve_arch(f"{__name__}:{attr}")
    assert needle in str(info.value) and "so it was not called" in str(info.value)


def test_arch_refuses_stdlib_callables_before_calling_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    for spec in ("tempfile:mkdtemp", "os:getcwd", "builtins:print"):
        with pytest.raises(rbl.CheckpointError, match="so it was not called"):
            resolve_arch(spec)
    assert list(tmp_path.iterdir()) == [], "mkdtemp ran"
    assert isinstance(resolve_arch(f"{__name__}:annotated_net"), nn.Linear)
    assert isinstance(resolve_arch("torch.nn:Identity"), nn.Identity)


BOMB_BYTES = 3_000_000_000
PEAK_LIMIT_MB = 1000  # torch alone is ~250 MB; inflating the bomb would need 3000 MB


def test_zip_bomb_checkpoint_is_refused_before_inflating(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pt"
    zip_bomb_checkpoint(bomb, BOMB_BYTES)
    assert bomb.stat().st_size < 4_000_000
    assert sum(i.file_size for i in zipfile.ZipFile(bomb).infolist()) > BOMB_BYTES
    code = (
        "import sys\n"
        "import robustbench_lite as rbl\n"
        "try:\n"
        "    rbl.load_model(sys.argv[1], arch='archs_for_tests:TinyNet')\n"
        "except rbl.CheckpointError as exc:\n"
        "    print(exc)\n"
        # VmHWM: this process's own peak (ru_maxrss would include the forking parent's)
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) // 1024)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    env.pop(MAX_BYTES_ENV, None)
    out = subprocess.run(
        [sys.executable, "-c", code, str(bomb)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    message, peak_mb = out.stdout.strip().splitlines()
    assert "refused before inflating" in message and MAX_BYTES_ENV in message
    assert "3,000,000" in message
    assert int(peak_mb) < PEAK_LIMIT_MB, f"peak RSS {peak_mb} MB: the bomb was inflated"


def test_checkpoint_cap_follows_the_architecture_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MAX_BYTES_ENV, raising=False)
    big = nn.Linear(4096, 4096)  # 64 MiB of weights: cap 8x
    assert max_checkpoint_bytes(big) == 8 * sum(t.nbytes for t in big.state_dict().values())
    assert max_checkpoint_bytes(nn.Linear(2, 2)) == 256 << 20
    path = tmp_path / "ok.pt"
    torch.save({"fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}, path)
    monkeypatch.setenv(MAX_BYTES_ENV, "1000")
    with pytest.raises(rbl.CheckpointError, match=f"set by {MAX_BYTES_ENV}"):
        rbl.load_model(path, arch="archs_for_tests:TinyNet")
    monkeypatch.setenv(MAX_BYTES_ENV, "100000")
    assert rbl.load_model(path, arch="archs_for_tests:TinyNet").meta["format"] == "state_dict"
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(rbl.CheckpointError, match="positive whole number of bytes"):
        rbl.load_model(path, arch="archs_for_tests:TinyNet")

"""Fuzz of the CLI's file inputs: random, truncated and mutated files of every format.

For each format (suite YAML, VNNLIB, ONNX, state_dict checkpoint, npz data, results store) a
valid seed file is mutated with a fixed seed; each mutant goes through the command that reads
it. Every run must end with exit code 0, 1 or 2 (never 3, an internal error), stay under a
memory cap, and write nothing beside its inputs. The cases run in one child process (torch is
imported once) that reports exit codes and its peak memory.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from verify_helpers import random_mlp, write_onnx

TESTS = Path(__file__).resolve().parents[1]
MUTANTS = 24  # per format
PEAK_MB = 3000  # the child imports torch (~500 MB); a bomb would go far beyond

SUITE = """\
version: 1
name: fuzz
seed: 0
model: {checkpoint: zoo:digits-mlp}
data: {source: digits, n: 8}
threats:
  small: {norm: linf, eps: 0.05}
checks:
  - id: clean
    expect: {clean_accuracy: ">= 0.5"}
  - id: fgsm
    attack: fgsm
    threat: small
    expect: {robust_accuracy: ">= 0.1"}
"""
VNNLIB = """\
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 -0.5))
(assert (<= X_0 0.5))
(assert (>= X_1 -0.5))
(assert (<= X_1 0.5))
(assert (or (and (>= Y_0 Y_1)) (and (<= Y_0 -10.0))))
"""

DRIVER = textwrap.dedent(
    """
    import json, signal, sys, warnings
    warnings.simplefilter("ignore")
    from robustbench_lite.cli.main import main

    class Overrun(Exception):
        pass

    def alarm(*_):
        raise Overrun()

    signal.signal(signal.SIGALRM, alarm)
    out = []
    for case in json.load(open(sys.argv[1])):
        signal.alarm(60)
        try:
            code = main(case["argv"])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
        except Overrun:
            code = "overrun"
        finally:
            signal.alarm(0)
        with open("/proc/self/status") as status:  # VmHWM: own peak, not the forking parent's
            peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
        out.append({"name": case["name"], "code": code, "peak_mb": peak})
    json.dump(out, open(sys.argv[2], "w"))
    """
)


def _mutants(seed: bytes, rng: random.Random, text: bool) -> list[bytes]:
    """Random bytes, truncations and in-place mutations of ``seed``."""
    out = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 600))), b""]
    while len(out) < MUTANTS:
        data = bytearray(seed)
        choice = rng.randrange(4)
        if choice == 0 and data:  # truncate
            data = data[: rng.randrange(len(data))]
        elif choice == 1 and data:  # flip bytes
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
        elif choice == 2 and text:  # hostile tokens in place of a number or a word
            words = data.decode("utf-8", "replace").split(" ")
            i = rng.randrange(len(words))
            words[i] = rng.choice(
                [
                    "nan",
                    "1e400",
                    "-inf",
                    "&a [*a, *a]",
                    "!!python/name:os.system",
                    "X_99999999",
                    "((((",
                    "1e-400",
                ]
            )
            data = bytearray(" ".join(words).encode())
        else:  # duplicate a slice
            if data:
                a = rng.randrange(len(data))
                data[a:a] = data[a : a + rng.randrange(1, 200)]
        out.append(bytes(data))
    return out


@pytest.mark.slow
def test_mutated_inputs_end_in_0_1_or_2_within_memory(tmp_path: Path) -> None:
    inputs, work = tmp_path / "in", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    net_path = write_onnx(random_mlp([2, 6, 2], seed=0), inputs / "net.onnx", 2)
    prop_path = inputs / "prop.vnnlib"
    prop_path.write_text(VNNLIB)
    ckpt = inputs / "seed.pt"
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(64, 10).state_dict(), ckpt)  # TinyNet's single layer, renamed below
    state = torch.load(ckpt, weights_only=True)
    torch.save({f"fc.{k}": v for k, v in state.items()}, ckpt)
    npz = inputs / "seed.npz"
    np.savez(npz, x=np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32), y=np.arange(6))
    store = inputs / "seed.sqlite"
    from robustbench_lite.suite.store import ResultStore

    ResultStore(store).close()

    formats = {  # name: (seed bytes, is text, argv with {} for the mutant's path)
        "yaml": (SUITE.encode(), True, ["validate", "{}"]),
        "vnnlib": (
            VNNLIB.encode(),
            True,
            ["verify", str(net_path), "{}", "--timeout", "5", "--workers", "1"],
        ),
        "onnx": (
            net_path.read_bytes(),
            False,
            ["verify", "{}", str(prop_path), "--timeout", "5", "--workers", "1"],
        ),
        "checkpoint": (
            ckpt.read_bytes(),
            False,
            [
                "attack",
                "fgsm",
                "--model",
                "{}",
                "--arch",
                "archs_for_tests:TinyNet",
                "--threat",
                "linf:0.1",
                "--n",
                "4",
            ],
        ),
        "npz": (
            npz.read_bytes(),
            False,
            [
                "attack",
                "fgsm",
                "--model",
                "zoo:digits-mlp",
                "--data",
                "npz:{}",
                "--threat",
                "linf:0.1",
            ],
        ),
        "store": (store.read_bytes(), False, ["history", "--db", "{}"]),
    }
    suffix = {
        "yaml": ".yaml",
        "vnnlib": ".vnnlib",
        "onnx": ".onnx",
        "checkpoint": ".pt",
        "npz": ".npz",
        "store": ".sqlite",
    }
    rng = random.Random(20261202)
    cases = []
    for name, (seed, text, argv) in formats.items():
        for i, data in enumerate([seed, *_mutants(seed, rng, text)]):  # the seed itself first
            path = inputs / f"{name}-{i}{suffix[name]}"
            path.write_bytes(data)
            cases.append({"name": path.name, "argv": [a.replace("{}", str(path)) for a in argv]})
    before = {p: p.read_bytes() for p in inputs.iterdir()}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "HOME": str(tmp_path / "home"),
        "RBL_DEBUG": "",
        "OMP_NUM_THREADS": "1",
    }
    subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path / "cases.json"), str(tmp_path / "out.json")],
        cwd=work,
        env=env,
        check=True,
        timeout=1200,
        capture_output=True,
    )
    results = json.loads((tmp_path / "out.json").read_text())
    bad = [r for r in results if r["code"] not in (0, 1, 2)]
    assert not bad, bad
    seeds = {r["name"]: r["code"] for r in results if r["name"].split(".")[0].endswith("-0")}
    assert set(seeds.values()) == {0}, seeds  # the unmutated files work: the commands are real
    assert max(r["peak_mb"] for r in results) < PEAK_MB
    assert {p: p.read_bytes() for p in inputs.iterdir()} == before, "an input was changed or added"
    assert list(work.iterdir()) == [], "something was written into the working folder"

"""VNNLIB files are untrusted: devices, FIFOs, huge indices, DNF explosions, deep nesting,
binary content, absurd numbers and empty boxes are refused with exit code 2 and one line,
within a memory cap; ``verify --timeout`` is positive and finite and covers the parsing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from resource_helpers import PEAK_MB, run_cli
from robustbench_lite.verify.vnnlib import (
    MAX_BYTES_ENV,
    MAX_DISJUNCTS_ENV,
    MAX_ROWS_ENV,
    parse_vnnlib,
    read_vnnlib,
)
from verify_helpers import random_mlp, write_onnx

from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import VnnlibError

HEADER = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
BOX = "(assert (<= X_0 1))\n(assert (>= X_0 -1))\n(assert (<= X_1 1))\n(assert (>= X_1 -1))\n"
OR40 = "(assert (and " + " ".join(["(or (<= Y_0 0) (<= Y_1 0))"] * 40) + "))\n"
OR14 = "(assert (and " + " ".join(["(or (<= Y_0 0) (<= Y_1 0))"] * 14) + "))\n"  # 16384 x 14 rows


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("net") / "net.onnx"
    return write_onnx(random_mlp([2, 6, 6, 2], seed=3), path, 2)


def _file(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ------------------------------------------------------------------ the bombs, through the CLI


def test_bombs_are_refused_by_the_cli_within_memory(net: Path, tmp_path: Path) -> None:
    big_index = "(declare-const X_99999999 Real)\n(declare-const Y_99999999 Real)\n"
    big_index += (
        "(assert (<= X_99999999 1))\n(assert (>= X_99999999 0))\n(assert (<= Y_99999999 0))\n"
    )
    cases = {
        "/dev/zero": ("/dev/zero", "not a regular file"),
        "X_99999999": (_file(tmp_path, "idx.vnnlib", big_index), "beyond the network's 2 inputs"),
        "(and (or a b) x40)": (
            _file(tmp_path, "or40.vnnlib", HEADER + BOX + OR40),
            f"more than 100000 disjuncts.*{MAX_DISJUNCTS_ENV}",
        ),
    }
    for what, (prop, words) in cases.items():
        run = run_cli(["verify", str(net), str(prop), "--timeout", "20"])
        assert run.code == 2, (what, run.stderr)
        assert len(run.error_lines) == 1, (what, run.stderr)
        assert any(w in run.stderr for w in words.split(".*")), (what, run.stderr)
        assert run.peak_mb < PEAK_MB, (what, f"{run.peak_mb:.0f} MB")


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("deep", HEADER + BOX + "(assert " + "(and " * 5000 + "(<= Y_0 0)" + ")" * 5001 + "\n", "nest deeper"),
        ("deep-term", HEADER + BOX + "(assert (<= " + "(+ " * 5000 + "Y_0" + ")" * 5000 + " 0))\n", "nest deeper"),
        ("binary", bytes(range(256)) * 8, "not a text file"),
        ("nul", (HEADER + BOX).encode() + b"\x00\n", "NUL bytes"),
        ("gzip", b"\x1f\x8b\x08\x00" + bytes(40), "gzip-compressed"),
        ("1e308", HEADER + BOX.replace("-1", "-1e308") + "(assert (<= Y_0 0))\n", "not finite or over 1e+30"),
        ("nan", HEADER + BOX.replace("(<= X_1 1)", "(<= X_1 nan)") + "(assert (<= Y_0 0))\n", "'nan' is not finite"),
        ("lo>hi", HEADER + BOX.replace("(>= X_0 -1)", "(>= X_0 2)") + "(assert (<= Y_0 0))\n", "X_0 has lower bound 2.0 above its upper bound 1.0"),
        ("empty-or", HEADER + BOX + "(assert (or))\n", "false by construction"),
        ("Y_7", HEADER.replace("Y_1", "Y_7") + BOX + "(assert (<= Y_7 0))\n", "beyond the network's 2 outputs"),
        ("rows", HEADER + BOX + OR14, f"output constraint rows.*{MAX_ROWS_ENV}"),
    ],
)  # fmt: skip
def test_hostile_properties_exit_2_with_one_line(
    name: str,
    text: str | bytes,
    words: str,
    net: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prop = _file(tmp_path, "p.vnnlib", text)
    assert main(["verify", str(net), str(prop), "--timeout", "20", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert any(w in err for w in words.split(".*")), err


def test_a_fifo_is_refused_without_waiting_for_a_writer(net: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "p.vnnlib"
    os.mkfifo(fifo)
    # a CLI that waited for a writer would be killed at timeout_s, failing the exit-code check
    run = run_cli(["verify", str(net), str(fifo), "--timeout", "20"], timeout_s=240)
    assert run.code == 2 and "is a FIFO, not a regular file" in run.stderr, run.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "0", "-1", "1e6", "soon"])
def test_verify_timeout_must_be_positive_and_finite(value: str, net: Path, tmp_path: Path) -> None:
    prop = _file(tmp_path, "p.vnnlib", HEADER + BOX + "(assert (<= Y_0 -1000000))\n")
    with pytest.raises(SystemExit) as info:
        main(["verify", str(net), str(prop), f"--timeout={value}"])
    assert info.value.code == 2


def test_timeout_covers_the_parsing(net: Path, tmp_path: Path) -> None:
    """A large, valid file that takes long to parse answers ``timeout``, not after the parse.

    Judged in CPU seconds, which load does not stretch: the child's CPU time beyond that of a
    run on a tiny property must stay well below what parsing the whole file costs."""
    head = HEADER + BOX + "(assert (<= Y_0 -1000000))\n"
    line = "(assert (<= X_0 1.0))\n"
    tenth = time.process_time()
    parse_vnnlib(head + line * 120_000)
    full_parse_cpu_s = 10 * (time.process_time() - tenth)  # 26 MB: about 12 s here
    path = tmp_path / "slow.vnnlib"
    path.write_text(head + line * 1_200_000)
    small = tmp_path / "small.vnnlib"
    small.write_text(head)
    base = run_cli(["verify", str(net), str(small), "--timeout", "60"], timeout_s=600)
    assert base.code == 0, base.stdout + base.stderr
    run = run_cli(["verify", str(net), str(path), "--timeout", "1"], timeout_s=600)
    assert run.code == 0 and run.stdout.splitlines()[0] == "timeout", run.stdout + run.stderr
    # the budget (1 s) and the hard grace (2 s) bound the parsing done before the answer
    assert run.cpu_seconds - base.cpu_seconds < 0.6 * full_parse_cpu_s, (run, base)


# ------------------------------------------------------------------ the parser's limits


def test_size_limit_is_named_and_can_be_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, "p.vnnlib", HEADER + BOX + "(assert (<= Y_0 0))\n")
    monkeypatch.setenv(MAX_BYTES_ENV, "100")
    with pytest.raises(VnnlibError, match=f"over the limit of 100 bytes.*{MAX_BYTES_ENV}"):
        read_vnnlib(path)
    monkeypatch.setenv(MAX_BYTES_ENV, "100000")
    assert read_vnnlib(path).n_inputs == 2


def test_disjunct_limit_is_checked_while_expanding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_DISJUNCTS_ENV, "1000")
    ten = "(assert (and " + " ".join(["(or (<= Y_0 0) (<= Y_1 0))"] * 10) + "))\n"  # 1024
    with pytest.raises(VnnlibError, match="more than 1000 disjuncts"):
        parse_vnnlib(HEADER + BOX + ten)
    nine = ten.replace("(or (<= Y_0 0) (<= Y_1 0)) ", "", 1)  # 512 disjuncts of 9 rows
    prop = parse_vnnlib(HEADER + BOX + nine)
    assert len(prop.cases) == 1 and len(prop.cases[0].disjuncts) == 512
    # two asserts that each branch multiply out: the limit holds across asserts too
    half = "(assert (or " + " ".join(["(<= Y_0 0)"] * 40) + "))\n"
    with pytest.raises(VnnlibError, match="more than 1000 disjuncts"):
        parse_vnnlib(HEADER + BOX + half + half)


def test_index_limits_without_a_network() -> None:
    with pytest.raises(VnnlibError, match="must be below 16777216"):
        parse_vnnlib("(declare-const X_99999999 Real)\n(declare-const Y_0 Real)\n")
    with pytest.raises(VnnlibError, match="X_2 is beyond the network's 2 inputs"):
        parse_vnnlib(HEADER + "(declare-const X_2 Real)\n", n_inputs=2, n_outputs=2)


def test_a_large_box_with_many_output_disjuncts_stays_linear() -> None:
    """The box is one shared chunk: 3072 inputs x 9 disjuncts, like oval21."""
    n = 3072
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(n))
    text += "".join(f"(declare-const Y_{j} Real)\n" for j in range(10))
    text += "".join(f"(assert (<= X_{i} 0.5))\n(assert (>= X_{i} -0.5))\n" for i in range(n))
    text += "(assert (or " + " ".join(f"(and (<= Y_0 Y_{j}))" for j in range(1, 10)) + "))\n"
    prop = parse_vnnlib(text)
    (case,) = prop.cases
    assert case.lo.shape == (n,) and (case.hi == 0.5).all() and len(case.disjuncts) == 9
    assert prop.holds_at(np.zeros(n), np.r_[0.0, 1.0, np.zeros(8)])


def test_some_empty_boxes_are_skipped_when_others_remain() -> None:
    text = HEADER + "(assert (or (and (<= X_0 1) (>= X_0 0) (<= X_1 1) (>= X_1 0))"
    text += " (and (<= X_0 0) (>= X_0 1) (<= X_1 1) (>= X_1 0))))\n(assert (<= Y_0 0))\n"
    prop = parse_vnnlib(text)
    assert len(prop.cases) == 1 and prop.cases[0].lo.tolist() == [0, 0]


def test_variables_are_declared_before_use() -> None:
    with pytest.raises(VnnlibError, match="before its first use"):
        parse_vnnlib("(assert (<= X_0 1))\n(declare-const X_0 Real)\n(declare-const Y_0 Real)\n")

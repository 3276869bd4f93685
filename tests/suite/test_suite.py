"""Suite loading is strict: every mistake is caught at load time with file, line and dotted path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import robustbench_lite as rbl
from robustbench_lite.core.errors import SuiteError
from robustbench_lite.suite.schema import load_suite

GOOD = """\
version: 1
name: demo
seed: 3
data: {source: digits, n: 20}
threats:
  linf-01: {norm: linf, eps: 0.1}
  l2-1: {norm: l2, eps: 1.0}
defenses:
  bits4: {use: bit_depth, bits: 4}
checks:
  - id: clean
    expect: {clean_accuracy: ">= 0.5"}
  - id: pgd
    attack: pgd
    params: {steps: 5}
    threat: linf-01
    expect: {robust_accuracy: ">= 0.0"}
  - id: pgd-bits
    attack: pgd
    defense: bits4
    threat: linf:8/255
    expect: {success_rate: "<= 1"}
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_suite_loads_with_threats_defenses_and_lines(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, GOOD))
    assert (suite.name, suite.seed, suite.data.n) == ("demo", 3, 20)
    assert [c.id for c in suite.checks] == ["clean", "pgd", "pgd-bits"]
    assert [c.kind for c in suite.checks] == ["clean", "attack", "attack"]
    pgd = suite.checks[1]
    assert (
        pgd.param_dict == {"steps": 5}
        and pgd.threat is not None
        and pgd.threat.eps == pytest.approx(0.1)
    )
    assert pgd.line == 13
    bits = suite.checks[2]
    assert (
        bits.defense is not None
        and bits.defense.use == "bit_depth"
        and dict(bits.defense.params) == {"bits": 4}
    )
    assert bits.threat is not None and bits.threat.eps == pytest.approx(8 / 255)
    assert str(suite.checks[0].expect[0]) == "clean_accuracy >= 0.5"


def test_unknown_parameter_names_line_path_and_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace("params: {steps: 5}", "params:\n      stepz: 5")
    msg = error_of(tmp_path, text)
    assert (
        "suite.yaml:16 checks[1].params.stepz: unknown parameter of pgd; did you mean steps" in msg
    )


def test_parameter_of_the_wrong_kind_names_line_value_and_default(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("params: {steps: 5}", "params:\n      steps: five"))
    assert (
        "suite.yaml:16 checks[1].params.steps: pgd takes a whole number, not 'five'; e.g. steps=40"
        in msg
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("name: demo", "nmae: demo", ":2 nmae: unknown key; did you mean name?"),
        (
            "    attack: pgd\n    params",
            "    attack: pgdd\n    params",
            ":14 checks[1].attack: unknown attack 'pgdd'; did you mean pgd",
        ),
        ('">= 0.5"', '"=> 0.5"', ":12 checks[0].expect.clean_accuracy: '=> 0.5': bad operator"),
        (
            '{robust_accuracy: ">= 0.0"}',
            '{verified_fraction: ">= 0.0"}',
            "checks[1].expect.verified_fraction: this check does not produce 'verified_fraction'",
        ),
        (
            "threat: linf-01",
            "threat: linf-02",
            "checks[1].threat: unknown threat 'linf-02'; did you mean linf-01?",
        ),
        (
            "threat: linf-01",
            "threat: {norm: linf, eps: 0.1, goal: top_k, k: 3}",
            "checks[1].threat: attack pgd does not support linf/top_k",
        ),
        (
            "defense: bits4",
            "defense: bits5",
            "checks[2].defense: unknown defense 'bits5'; did you mean bits4?",
        ),
        ("bits: 4}", "bits: 40}", ":9 defenses.bits4.bits: 40 must be an integer in 1..16"),
        ("seed: 3", "seed: three", ":3 seed: expected an integer, got a str 'three'"),
        ("eps: 1.0}", "eps: -1}", ":7 threats.l2-1: threat.eps: -1 must be a finite number >= 0"),
        (
            "    expect: {clean_accuracy",
            "    n: 0\n    expect: {clean_accuracy",
            ":12 checks[0].n: 0 must be >= 1",
        ),
        (
            "data: {source: digits, n: 20}",
            "data: {source: digits, split: val}",
            ":4 data.split: unknown split 'val'",
        ),
        (
            "  - id: pgd\n",
            "  - id: clean\n",
            ":13 checks[1].id: duplicate check id 'clean' (first on line 11)",
        ),
        (
            "    attack: pgd\n    params",
            "    attack: pgd\n    verify: smt\n    params",
            "checks[1].verify: a check has at most one of attack/verify/detect",
        ),
        ('{clean_accuracy: ">= 0.5"}', "{clean_accuracy: 0.5}", "0.5 has no operator"),
    ],
)
def test_load_errors_are_located(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    msg = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert expected in msg, msg
    assert msg.startswith(str(tmp_path / "suite.yaml"))


def test_missing_expect_and_wrong_types(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace('    expect: {clean_accuracy: ">= 0.5"}\n', ""))
    assert "checks[0]: missing required key 'expect'" in msg and ":11 " in msg
    assert "expected a non-empty list" in error_of(tmp_path, "checks: {}\n")
    assert "a clean check takes no threat" in error_of(
        tmp_path, GOOD.replace("  - id: clean\n", "  - id: clean\n    threat: linf-01\n")
    )


def test_malformed_yaml_gives_line_and_column(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "name: demo\nchecks:\n  - id: [unclosed\n")
    assert "suite.yaml:4:1: malformed YAML" in msg or "suite.yaml:3:" in msg
    msg = error_of(tmp_path, "name: a\nname: b\nchecks: []\n")
    assert "suite.yaml:2:1: malformed YAML: duplicate key 'name' (first on line 1)" in msg


def test_yaml_code_tags_are_refused(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "name: !!python/object/apply:os.system ['echo hi']\nchecks: []\n")
    assert "malformed YAML" in msg


def test_eps_sweep_expands_to_one_check_per_eps(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    threat: linf-01\n", "    threat: linf-01\n    eps: [0.05, 8/255, 0.2]\n", 1
    )
    suite = load_suite(write(tmp_path, text))
    ids = [c.id for c in suite.checks]
    assert ids == ["clean", "pgd@eps=0.05", "pgd@eps=8/255", "pgd@eps=0.2", "pgd-bits"]
    assert [c.threat.eps for c in suite.checks[1:4]] == pytest.approx([0.05, 8 / 255, 0.2])  # type: ignore[union-attr]


def test_default_threat_and_relative_paths(tmp_path: Path) -> None:
    text = GOOD.replace("threat: linf-01", "threat: default").replace(
        "data: {source: digits, n: 20}",
        "data: {source: npz:data/x.npz}\nmodel: {checkpoint: ckpt/m.pt, arch: pkg.m:Net}",
    )
    suite = load_suite(write(tmp_path, text))
    assert suite.checks[1].model_threats and suite.checks[1].threat is None
    assert suite.data.source == f"npz:{tmp_path / 'data/x.npz'}"
    assert suite.model is not None and suite.model.checkpoint == str(tmp_path / "ckpt/m.pt")


def test_builtin_suites() -> None:
    smoke = load_suite("builtin:smoke")
    assert smoke.model is not None and smoke.model.checkpoint == "zoo:digits-cnn"
    with pytest.raises(
        SuiteError, match="unknown built-in suite 'builtin:smok'; did you mean smoke"
    ):
        load_suite("builtin:smok")
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite("no/such/suite.yaml")


def test_builtin_standard_is_clean_plus_standard_at_default_threats() -> None:
    from importlib.resources import files

    from robustbench_lite.suite.nodes import parse_yaml

    doc = parse_yaml(
        (files("robustbench_lite.suites") / "standard.yaml").read_text(), "standard.yaml"
    )
    assert [c.get("attack") for c in doc["checks"]] == [None, "standard"]
    assert doc["checks"][1]["threat"] == "default"
    if "standard" not in rbl.list_attacks():  # the ensemble lands in attacks/standard.py
        text = (
            (files("robustbench_lite.suites") / "standard.yaml")
            .read_text()
            .replace("attack: standard", "attack: pgd")
        )
        suite = _load_text(text)
    else:
        suite = load_suite("builtin:standard")
    assert [c.kind for c in suite.checks] == ["clean", "attack"] and suite.checks[1].model_threats


def _load_text(text: str) -> rbl.Suite:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "standard.yaml"
        path.write_text(text)
        return load_suite(path)


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    cli = [sys.executable, "-P", "-m", "robustbench_lite", "validate"]
    ok = subprocess.run([*cli, str(write(tmp_path, GOOD))], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok:" in ok.stdout and "3 checks" in ok.stdout
    bad = subprocess.run(
        [*cli, str(write(tmp_path, GOOD.replace("steps: 5", "stepz: 5"), "bad.yaml"))],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert (
        "bad.yaml:15 checks[1].params.stepz: unknown parameter of pgd; did you mean steps"
        in bad.stderr
    )
    assert len(bad.stderr.strip().splitlines()) == 1 and bad.stdout == ""


def test_dump_defaults_is_a_valid_suite_whose_blocks_load(tmp_path: Path) -> None:
    from robustbench_lite.suite.defaults import dump_defaults

    text = dump_defaults()
    assert len(load_suite(write(tmp_path, text, "dump.yaml")).checks) == 1
    lines = text.splitlines()
    start = lines.index("  # - id: pgd")
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("  # - id:")), len(lines)
    )
    block = ["  " + line[4:] for line in lines[start:end]]
    assert (
        "  #     steps: 40  # int gradient steps per restart." in lines[start:end]
    )  # doc from Args:
    suite = load_suite(
        write(tmp_path, "\n".join(lines[:start] + block + lines[end:]) + "\n", "pgd.yaml")
    )
    assert [c.id for c in suite.checks] == ["clean", "pgd"] and suite.checks[1].param_dict[
        "steps"
    ] == 40

"""Threat sanity (issue 15, item 6): an eps beyond the input range is refused with the largest
meaningful value (attacks, the CLI, suites before any work); norm names are case-insensitive."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.core.errors import ThreatSpecError
from robustbench_lite.core.threat import (
    ThreatModel,
    largest_meaningful_eps,
    require_meaningful_eps,
)
from robustbench_lite.core.types import Goal, Norm
from robustbench_lite.suite.schema import load_suite


@dataclass(frozen=True)
class Identity(rbl.Attack):
    """Returns the clean inputs (every norm): what matters here is the base class's checks."""

    name = "test_identity"
    supports = frozenset((n, Goal.UNTARGETED) for n in (Norm.LINF, Norm.L2, Norm.L1, Norm.L0))

    def run(self, model, x, y, threat, *, target, generator):  # type: ignore[no-untyped-def]
        return x


@pytest.mark.parametrize(
    ("norm", "bounds", "dim", "limit"),
    [
        (Norm.LINF, (0.0, 1.0), 64, 1.0),
        (Norm.L2, (0.0, 1.0), 64, 8.0),
        (Norm.L1, (0.0, 1.0), 64, 64.0),
        (Norm.LINF, (-1.0, 1.0), 10, 2.0),
        (Norm.L2, (-1.0, 1.0), 10, 2.0 * math.sqrt(10)),
        (Norm.L0, (0.0, 1.0), 64, None),
        (Norm.PATCH, (0.0, 1.0), 64, None),
        (Norm.LINF, (-math.inf, math.inf), 64, None),
    ],
)
def test_largest_meaningful_eps(
    norm: Norm, bounds: tuple[float, float], dim: int, limit: float | None
) -> None:
    got = largest_meaningful_eps(norm, bounds, dim)
    assert got == (pytest.approx(limit) if limit is not None else None)


@pytest.mark.parametrize(
    ("spec", "largest"),
    [("linf:30", "linf eps is 1 "), ("l2:8.5", "l2 eps is 8 "), ("l1:65", "l1 eps is 64 ")],
)
def test_attack_refuses_eps_beyond_the_input_range(
    digits_cnn: rbl.Model, spec: str, largest: str
) -> None:
    x, y = rbl.load_data("digits", n=4)
    with pytest.raises(ThreatSpecError) as info:
        Identity()(digits_cnn, x, y, spec)
    message = str(info.value)
    assert "\n" not in message and largest in message and "[0, 1]" in message


@pytest.mark.parametrize("spec", ["linf:1", "l2:8", "l1:64", "linf:0.1", "l0:1000"])
def test_attack_accepts_eps_up_to_the_largest_meaningful(digits_cnn: rbl.Model, spec: str) -> None:
    x, y = rbl.load_data("digits", n=4)
    result = Identity()(digits_cnn, x, y, spec)  # l0 counts elements: not checked here
    assert len(result.success) == 4


def test_unbounded_inputs_take_any_eps() -> None:
    net = torch.nn.Linear(3, 2)
    model = rbl.Model(net=net, bounds=(-math.inf, math.inf), input_shape=(3,))
    require_meaningful_eps(ThreatModel.parse("linf:1e6"), model.bounds, torch.zeros(2, 3))
    require_meaningful_eps(ThreatModel.parse("none"), (0.0, 1.0), torch.zeros(2, 3))


def test_mapping_inputs_use_the_perturbed_modality() -> None:
    x = {"camera": torch.zeros(2, 3, 4, 4), "lidar": torch.zeros(2, 100, 4)}
    require_meaningful_eps(ThreatModel.parse("l2:6.9@camera"), (0.0, 1.0), x)  # sqrt(48) = 6.93
    with pytest.raises(ThreatSpecError, match=r"largest meaningful l2 eps is 6\.9282"):
        require_meaningful_eps(ThreatModel.parse("l2:7@camera"), (0.0, 1.0), x)


def test_cli_attack_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["attack", "fgsm", "--model", "zoo:digits-cnn", "--threat", "linf:30", "--n", "5"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "the largest meaningful linf eps is 1 " in err


SUITE = """\
version: 1
name: budget
model: {{checkpoint: zoo:digits-cnn}}
data: {{source: digits, n: 10}}
checks:
  - {{id: clean, expect: {{clean_accuracy: ">= 0"}}}}
  - {{id: wide, attack: fgsm, threat: "{threat}", expect: {{}}}}
"""


def test_suite_refuses_before_any_cell_runs(tmp_path: Path) -> None:
    path = tmp_path / "budget.yaml"
    path.write_text(SUITE.format(threat="linf:30"))
    db = tmp_path / "results.sqlite"
    with pytest.raises(ThreatSpecError) as info:
        rbl.run_suite(path, db=db)
    assert str(info.value).startswith(f"{path}:7 check wide: threat linf:30: eps 30 ")
    import sqlite3

    with sqlite3.connect(db) as conn:  # no cell was computed, so none was stored
        assert conn.execute("SELECT COUNT(*) FROM cells").fetchone() == (0,)


def test_cli_run_exits_2_on_a_wide_threat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "budget.yaml"
    path.write_text(SUITE.format(threat="l2:100"))
    assert main(["run", str(path), "--no-db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the largest meaningful l2 eps is 8 " in err


@pytest.mark.parametrize(
    ("spec", "same"),
    [
        ("Linf:0.1", "linf:0.1"),
        ("LINF:8/255", "linf:8/255"),
        ("L2:0.5:Targeted", "l2:0.5:targeted"),
        ("l1:2:TOP_K:3", "l1:2:top_k:3"),
        (" None ", "none"),
    ],
)
def test_norm_and_goal_names_are_case_insensitive(spec: str, same: str) -> None:
    assert ThreatModel.parse(spec) == ThreatModel.parse(same)
    assert ThreatModel.parse(spec).name == same  # the canonical name is lower case
    mapping = dict(zip(("norm", "eps"), spec.strip().split(":")[:2]))
    if len(mapping) == 2:
        assert ThreatModel.parse(mapping).norm is ThreatModel.parse(same).norm


def test_yaml_threats_are_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "case.yaml"
    path.write_text(
        "version: 1\nthreats:\n  big: {norm: LINF, eps: 0.1}\nchecks:\n"
        '  - {id: a, attack: fgsm, threat: "Linf:0.1", expect: {}}\n'
        "  - {id: b, attack: fgsm, threat: big, expect: {}}\n"
        '  - {id: c, attack: fgsm, threat: "L2:0.5:TARGETED", expect: {}}\n'
    )
    a, b, c = load_suite(path).checks
    assert a.threat == ThreatModel.parse("linf:0.1")
    assert b.threat is not None and b.threat.norm is Norm.LINF and b.threat.eps == 0.1
    assert c.threat == ThreatModel.parse("l2:0.5:targeted")


def test_cli_threat_is_case_insensitive(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["attack", "fgsm", "--model", "zoo:digits-cnn", "--threat", "LInf:0.1", "--n", "5"])
        == 0
    )
    assert "linf:0.1" in capsys.readouterr().out

"""CLI follow-ups: ``verify --verifier NAME --param k=v`` and inversion attacks in ``attack``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.suite.kinds.invert import invert_classes

SMOOTHING = ["--verifier", "smoothing", "--param", "sigma=0.25", "--param", "n=1000"]
VERIFY = ["verify", "--model", "zoo:digits-mlp", "--threat", "l2:0.25", "--n", "10"]
MI_FACE = ["attack", "mi_face", "--model", "zoo:digits-private-target", "--threat", "none:targeted"]
QUICK_MI = ["--param", "max_iter=200", "--param", "patience=20"]


def _values(line: str) -> dict[str, float]:
    words = line.split()
    return {k: float(v) for k, v in zip(words[::2], words[1::2])}


def _table_values(line: str, check_id: str) -> dict[str, float]:
    """The table's values line of a row without accuracy columns: ``ID: k=v, k=v, ...``."""
    head, _, rest = line.partition(": ")
    assert head == check_id, line
    pairs = (item.split("=") for item in rest.split(", "))
    return {k: float(v) for k, v in pairs}


def test_verify_runs_the_named_verifier_with_its_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    report = tmp_path / "r.json"
    assert main([*VERIFY, *SMOOTHING, "--report", str(report)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("check") and "smoothing-l2:0.25" in out[2]
    printed = _values(out[-1])
    # the same certificate through the API (deterministic: the verifier's seed is 0)
    model = rbl.load_model("zoo:digits-mlp")
    x, y = rbl.load_data("digits", n=10)
    direct = rbl.create_verifier("smoothing", sigma=0.25, n=1000).verify(model, x, y, "l2:0.25")
    assert printed["certified_accuracy"] == pytest.approx(direct.verified_fraction, abs=1e-4)
    assert f"verified {direct.verified_fraction:.3f}" in out[-2]
    radii = [printed[f"certified_accuracy@{r}"] for r in ("0.25", "0.5", "1")]
    assert radii == sorted(radii, reverse=True)  # a larger radius certifies no more samples
    doc = json.loads(report.read_text())
    check = doc["checks"][0]
    assert doc["suite"] == "verify:smoothing" and check["component"] == "smoothing"
    assert check["values"]["abstain_fraction"] == pytest.approx(printed["abstain_fraction"])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--verifier", "smoothy"], "did you mean smoothing"),
        (["--verifier", "smoothing", "--param", "sigmaa=0.25"], "sigmaa"),
        (["--verifier", "smoothing", "--param", "sigma=-1"], "sigma"),
        (["--verifier", "smoothing", "--param", "sigma"], "key=value"),
    ],
)
def test_verify_bad_verifier_or_param_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    report = tmp_path / "never.json"
    assert main([*VERIFY, *extra, "--report", str(report)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert not report.exists()


def test_verify_refuses_a_threat_the_verifier_does_not_support(
    capsys: pytest.CaptureFixture[str],
) -> None:
    threat = ["--threat", "linf:0.01"]
    assert main(["verify", "--model", "zoo:digits-mlp", *threat, "--verifier", "smoothing"]) == 2
    assert "supports l2/untargeted" in capsys.readouterr().err


def test_vnncomp_mode_takes_no_other_verifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["verify", str(tmp_path / "n.onnx"), str(tmp_path / "p.vnnlib")]
    assert main([*args, "--verifier", "smoothing"]) == 2
    assert "for dataset mode" in capsys.readouterr().err


def test_attack_runs_an_inversion_attack_on_every_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    report = tmp_path / "mi.json"
    assert main([*MI_FACE, *QUICK_MI, "--report", str(report)]) == 0
    out = capsys.readouterr().out.splitlines()
    check = json.loads(report.read_text())["checks"][0]
    assert check["kind"] == "invert" and check["detail"]["classes"] == [0, 1, 2, 3, 4]
    hits = check["detail"]["target_hit"]
    assert check["values"]["target_top1"] == pytest.approx(sum(hits) / len(hits))
    printed = _table_values(out[-1], "mi_face-none:targeted")
    assert printed.keys() == check["values"].keys()
    assert printed["eval_top1"] == pytest.approx(check["values"]["eval_top1"], abs=1e-4)
    assert sum("eval_top1" in line for line in out) == 1  # the values are printed once
    # the invert check's own path with the same seed gives the same reconstructions' scores
    model = rbl.load_model("zoo:digits-private-target")
    attack = rbl.create_attack("mi_face", max_iter=200, patience=20)
    r = invert_classes(attack, model, generator=torch.Generator().manual_seed(0))
    assert r.success.tolist() == hits
    assert r.metrics["eval_top1"] == pytest.approx(check["values"]["eval_top1"])


@pytest.mark.parametrize("extra", [["--n", "5"], ["--data", "digits"]])
def test_attack_inversion_refuses_data_options(
    capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    assert main([*MI_FACE, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reads no data" in err and extra[0] in err


def test_verify_default_is_complete_and_takes_its_params(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["verify", "--model", "zoo:digits-mlp", "--threat", "linf:0.01", "--n", "4"]
    assert main([*args, "--param", "workers=1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "complete-linf:0.01" in out[2] and out[-2].startswith("verified ")
    assert out[-1].startswith("search over 4 samples: ")  # methods, domains, seconds per phase

"""One function makes report values: the CLI, the suite runner and the fixture agree."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

import robustbench_lite as rbl
from robustbench_lite.cli.main import main
from robustbench_lite.core.types import Status
from robustbench_lite.report.values import attack_values, result_values, verify_values
from robustbench_lite.suite.runner import run_suite


def test_vector_values_match_the_result_properties(digits_cnn: rbl.Model) -> None:
    x, y = rbl.load_data("digits", n=32)
    r = rbl.create_attack("pgd", steps=5)(digits_cnn, x, y, "linf:0.1", seed=0)
    values = result_values(r)
    assert values["robust_accuracy"] == r.robust_accuracy
    assert values["clean_accuracy"] == r.clean_accuracy
    assert values["success_rate"] == r.success_rate
    assert attack_values(r.clean_correct.tolist(), r.success.tolist()) == {
        k: values[k] for k in ("clean_accuracy", "robust_accuracy", "success_rate")
    }


def test_verify_values_carry_all_three_fractions() -> None:
    per_sample = (Status.VERIFIED, Status.UNKNOWN, Status.FALSIFIED, Status.VERIFIED)
    values = result_values(rbl.VerificationResult(per_sample=per_sample))
    assert values == {
        "verified_fraction": 0.5,
        "falsified_fraction": 0.25,
        "unknown_fraction": 0.25,
    }
    assert verify_values(["verified", "unknown"])["unknown_fraction"] == 0.5


def test_cli_and_suite_report_the_same_attack_values(tmp_path: Path) -> None:
    report_path = tmp_path / "attack.json"
    argv = ["attack", "fgsm", "--model", "zoo:digits-cnn", "--threat", "linf:0.1", "--n", "40"]
    assert main([*argv, "--report", str(report_path)]) == 0
    cli_values = json.loads(report_path.read_text())["checks"][0]["values"]

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: same
            model: {checkpoint: zoo:digits-cnn}
            data: {source: digits, n: 40}
            shard_size: 16
            checks:
              - {id: fgsm, attack: fgsm, threat: "linf:0.1", expect: {}}
            """
        )
    )
    suite_values = run_suite(suite, db=None).results[0].values
    assert cli_values == pytest.approx(suite_values)  # fgsm is deterministic: shards do not matter
    assert torch.tensor(cli_values["robust_accuracy"]) < cli_values["clean_accuracy"]

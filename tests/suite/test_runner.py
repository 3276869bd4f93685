"""run_suite: cells merge by sample index, default threats, defenses, detectors, soundness cross-check."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import robustbench_lite as rbl
from robustbench_lite import Status
from robustbench_lite.core.errors import DataError, SuiteError
from robustbench_lite.report.formats import comparable


def suite_file(
    tmp_path: Path, body: str, *, n: int = 30, shard: int = 7, model: str = "zoo:digits-cnn"
) -> Path:
    head = (
        f"version: 1\nname: t\nseed: 0\nshard_size: {shard}\nmodel: {{checkpoint: {model}}}\n"
        f"data: {{source: digits, n: {n}}}\n"
    )
    path = tmp_path / "suite.yaml"
    path.write_text(head + textwrap.dedent(body))
    return path


@rbl.register_verifier("test_liar", replace=True)
@dataclass(frozen=True)
class LiarVerifier(rbl.Verifier):
    """Claims every sample VERIFIED (a deliberately unsound verifier); ``honest`` says UNKNOWN."""

    honest: bool = False

    def verify(self, model, x, y, threat, *, timeout_s):  # type: ignore[no-untyped-def]
        status = Status.UNKNOWN if self.honest else Status.VERIFIED
        return rbl.VerificationResult(per_sample=tuple(status for _ in range(len(y))))


@rbl.register_detector("test_mean_pixel", replace=True)
@dataclass(frozen=True)
class MeanPixel(rbl.Detector):
    """Flags when the mean input value of the data it is given exceeds ``threshold``."""

    threshold: float = 0.5

    def scan(self, model, data=None):  # type: ignore[no-untyped-def]
        x, y = data
        score = float(x.mean())
        return rbl.Detection(
            flagged=score > self.threshold,
            score=score,
            threshold=self.threshold,
            evidence={"n": len(y)},
        )


def test_cells_merge_by_index_to_the_direct_computation(
    tmp_path: Path, digits_cnn: rbl.Model
) -> None:
    path = suite_file(
        tmp_path,
        """\
        checks:
          - {id: clean, expect: {clean_accuracy: ">= 0.9"}}
          - {id: fgsm, attack: fgsm, threat: "linf:0.1", expect: {robust_accuracy: ">= 0.0"}}
    """,
    )
    report = rbl.run_suite(path)
    x, y = rbl.load_data("digits", n=30)
    direct = rbl.create_attack("fgsm")(digits_cnn, x, y, "linf:0.1")
    clean, fgsm = report.results
    assert clean.values["clean_accuracy"] == pytest.approx(direct.clean_accuracy)
    assert fgsm.values["robust_accuracy"] == pytest.approx(direct.robust_accuracy)
    assert fgsm.values["success_rate"] == pytest.approx(direct.success_rate)
    assert fgsm.detail["success"] == direct.success.tolist()
    assert [(c["start"], c["stop"]) for c in fgsm.detail["cells"]] == [
        (0, 7),
        (7, 14),
        (14, 21),
        (21, 28),
        (28, 30),
    ]
    assert report.passed and report.env["cells"] == 10 and report.env["device"] == str(x.device)


def test_same_seed_same_report_and_resharding_keeps_deterministic_attacks(tmp_path: Path) -> None:
    body = """\
        checks:
          - {id: pgd, attack: pgd, params: {steps: 5}, threat: "linf:0.1", expect: {robust_accuracy: ">= 0"}}
          - {id: fgsm, attack: fgsm, threat: "l2:1", expect: {robust_accuracy: ">= 0"}}
    """
    first = rbl.run_suite(suite_file(tmp_path, body))
    second = rbl.run_suite(suite_file(tmp_path, body))
    assert comparable(first) == comparable(second)
    resharded = rbl.run_suite(suite_file(tmp_path, body, shard=30))
    assert resharded.results[1].values == first.results[1].values  # fgsm has no randomness


def test_default_threats_expand_per_model_threat(tmp_path: Path, digits_cnn: rbl.Model) -> None:
    path = suite_file(
        tmp_path,
        """\
        checks:
          - {id: pgd, attack: pgd, params: {steps: 3}, threat: default, expect: {}}
    """,
        n=10,
        shard=10,
    )
    report = rbl.run_suite(path)
    assert [r.id for r in report.results] == [f"pgd@{t}" for t in digits_cnn.default_threats]
    assert [r.threat for r in report.results] == list(digits_cnn.default_threats)
    bare = rbl.Model(net=digits_cnn.net, name="bare", input_shape=(1, 8, 8))
    # a model without default threats takes its data's (digits: linf 0.1 and l2 1, issue 15) ...
    assert [r.threat for r in rbl.run_suite(path, bare).results] == ["linf:0.1", "l2:1"]
    # ... and data without defaults asks for a threat by name
    x, y = rbl.load_data("digits", n=10)
    import numpy as np

    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    with pytest.raises(SuiteError, match="declare no default threats.*--threat"):
        rbl.run_suite(path, bare, data=f"npz:{tmp_path / 'd.npz'}")


def test_defense_check_runs_on_the_defended_model(tmp_path: Path, digits_cnn: rbl.Model) -> None:
    path = suite_file(
        tmp_path,
        """\
        defenses: {bits1: {use: bit_depth, bits: 1}}
        checks:
          - {id: clean-bits1, attack: fgsm, defense: bits1, threat: "linf:0.0", expect: {}}
    """,
    )
    (result,) = rbl.run_suite(path).results
    x, y = rbl.load_data("digits", n=30)
    squeezed = (x > 0.5).float()
    expected = (digits_cnn.logits(squeezed).argmax(1) == y).float().mean().item()
    assert result.values["clean_accuracy"] == pytest.approx(expected)
    assert result.detail["defense"] == "bits1"


def test_soundness_bug_fails_the_run_loudly(tmp_path: Path) -> None:
    body = """\
        checks:
          - {id: fgsm, attack: fgsm, threat: "linf:0.1", expect: {}}
          - {id: smt, verify: test_liar, threat: "linf:0.2", expect: {verified_fraction: ">= 0"}}
          - {id: smt-small, verify: test_liar, threat: "linf:0.05", expect: {}}
          - {id: smt-l2, verify: test_liar, threat: "l2:0.2", expect: {}}
    """
    report = rbl.run_suite(suite_file(tmp_path, body))
    fgsm, smt, small, l2 = report.results
    broken = [i for i, s in enumerate(fgsm.detail["success"]) if s]
    assert broken, "fgsm at 0.1 breaks some digits"
    assert not report.passed and not smt.passed
    assert smt.values["soundness_violations"] == len(broken)
    assert smt.detail["soundness_violations"] == {"fgsm": broken}
    assert "SOUNDNESS BUG" in smt.detail["soundness"] and "SOUNDNESS BUG" in report.to_markdown()
    assert small.passed  # the attack's set (eps 0.1) is not inside the verified one (eps 0.05)
    assert l2.passed  # a linf ball is not inside an l2 ball of the same radius
    nested = rbl.run_suite(
        suite_file(
            tmp_path,
            """\
        checks:
          - {id: fgsm-l2, attack: fgsm, threat: "l2:1", expect: {}}
          - {id: liar-linf, verify: test_liar, threat: "linf:1", expect: {}}
          - {id: liar-l2-small, verify: test_liar, threat: "l2:0.5", expect: {}}
    """,
        )
    )
    attack, big, small_l2 = nested.results
    assert any(attack.detail["success"])
    assert not big.passed and big.values["soundness_violations"] == sum(
        attack.detail["success"]
    )  # l2 ball in linf
    assert small_l2.passed
    honest = rbl.run_suite(
        suite_file(
            tmp_path,
            body.replace("verify: test_liar,", "verify: test_liar, params: {honest: true},"),
        )
    )
    assert honest.passed and honest.results[1].values["unknown_fraction"] == 1.0


def test_detector_gets_the_suite_data(tmp_path: Path) -> None:
    path = suite_file(
        tmp_path,
        """\
        checks:
          - {id: scan, detect: test_mean_pixel, params: {threshold: 0.9}, expect: {flagged: false}}
    """,
        n=25,
    )
    (scan,) = rbl.run_suite(path).results
    x, _ = rbl.load_data("digits", n=25)
    assert scan.passed and scan.values["score"] == pytest.approx(float(x.mean()))
    assert scan.detail["evidence"] == {"n": 25} and len(scan.detail["cells"]) == 1


def test_failed_expectation_is_reported_with_value(tmp_path: Path) -> None:
    path = suite_file(
        tmp_path,
        """\
        checks:
          - {id: clean, expect: {clean_accuracy: "> 0.999"}}
    """,
        n=200,
        shard=200,
    )
    (clean,) = rbl.run_suite(path).results
    assert not clean.passed
    assert clean.detail["failed"] == [
        f"clean_accuracy = {clean.values['clean_accuracy']:.4f}, expected > 0.999"
    ]


def test_quick_caps_samples_and_uses_quick_params(tmp_path: Path) -> None:
    path = suite_file(
        tmp_path,
        """\
        checks:
          - {id: pgd, attack: pgd, params: {steps: 50}, threat: "linf:0.1", expect: {}}
    """,
        n=300,
        shard=100,
    )
    report = rbl.run_suite(path, quick=True, n=150)
    assert (
        report.results[0].detail["n"] == 100 and report.results[0].detail["params"]["steps"] == 10
    )


def test_bad_model_and_data_are_clear_errors(tmp_path: Path, tiny_mlp: rbl.Model) -> None:
    body = "checks:\n  - {id: clean, expect: {}}\n"
    with pytest.raises(DataError, match="does not fit tiny-mlp"):
        rbl.run_suite(suite_file(tmp_path, body), tiny_mlp)
    path = tmp_path / "nomodel.yaml"
    path.write_text("data: digits\n" + body)
    with pytest.raises(SuiteError, match="the suite names no model; pass one"):
        rbl.run_suite(path)
    too_many = suite_file(tmp_path, "checks:\n  - {id: clean, n: 50, expect: {}}\n", n=20)
    with pytest.raises(DataError, match="n=50 is more than the 20 samples"):
        rbl.run_suite(too_many)


def test_attack_metrics_merge_by_kind() -> None:
    from robustbench_lite.suite.kinds.attack import merge_metric

    assert merge_metric("broken_by_apgd", [(3, 10), (4, 5)]) == 7
    assert merge_metric("seconds_apgd", [(1.5, 10), (0.5, 5)]) == pytest.approx(2.0)
    assert merge_metric("warning", [(False, 10), (True, 5)]) is True
    assert merge_metric("loss_not_increased", [(0.1, 10), (0.4, 5)]) == pytest.approx(0.2)


def test_timing_metrics_go_to_detail_not_values(tmp_path: Path) -> None:
    from dataclasses import dataclass as dc

    @rbl.register_attack("test_timed", replace=True)
    @dc(frozen=True)
    class Timed(rbl.Attack):
        supports = frozenset({(rbl.Norm.LINF, rbl.Goal.UNTARGETED)})

        def run(self, model, x, y, threat, *, target, generator):  # type: ignore[no-untyped-def]
            return rbl.AttackOutput(x, metrics={"seconds_inner": 0.5, "broken_by_inner": 1})

    path = suite_file(
        tmp_path,
        """\
        checks:
          - {id: timed, attack: test_timed, threat: "linf:0.1", expect: {}}
    """,
        n=14,
    )
    (result,) = rbl.run_suite(path).results
    assert "seconds_inner" not in result.values and result.values["broken_by_inner"] == 2
    assert result.detail["timing"] == {"seconds_inner": 1.0}

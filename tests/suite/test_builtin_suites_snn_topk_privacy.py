"""builtin:snn, builtin:topk, builtin:privacy and the PDSG example suite, each run with --quick.

They check real runs: the SNN and top-K size values (``l0_mean``, ``l2_mean``, ...) are the
means over successful samples of the per-sample sizes the base class measured, across shards,
and a failed sample never counts as a size of 0; the invert kind reconstructs every class.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import data_dir_or_skip

import robustbench_lite as rbl
from robustbench_lite.core.errors import SuiteError
from robustbench_lite.report.model import CheckResult
from robustbench_lite.suite.schema import load_suite

pytestmark = pytest.mark.usefixtures("one_thread")
EXAMPLE = Path(__file__).parents[2] / "examples" / "snn" / "pdsg-vs-fixed-surrogate.yaml"


def _mean_over_successes(r: CheckResult, norm: str, clean_correct: list[bool]) -> float:
    """The mean of the per-sample sizes in the check's detail over clean-correct successes."""
    sizes = r.detail["sizes"][norm]
    assert len(sizes) == len(clean_correct) == len(r.detail["success"])
    picked = [s for s, ok, cc in zip(sizes, r.detail["success"], clean_correct) if ok and cc]
    return sum(picked) / len(picked) if picked else math.nan


def _by_id(report: rbl.Report) -> dict[str, CheckResult]:
    return {r.id: r for r in report.results}


def _clean_correct(model: str, data: str, n: int, **options: Any) -> list[bool]:
    m = rbl.load_model(model)
    x, y = rbl.load_data(data, split="test", n=n, **options)
    return (m.logits(x).argmax(dim=1) == y).tolist()


@pytest.mark.data
def test_builtin_snn_quick_reports_l0_over_successes_surrogate_and_spikes() -> None:
    data_dir_or_skip("nmnist_small_slayer")
    suite = replace(load_suite("builtin:snn"), shard_size=10)  # 3 cells per check
    report = rbl.run_suite(suite, quick=True, n=30)
    correct = _clean_correct("zoo:nmnist-snn", "nmnist", 30, time_bins=8, downsample=2)
    checks = _by_id(report)
    assert report.passed, report.to_table()
    for cid in ("sda-pdsg", "sda-pdsg-budget20", "naive-topk-flip"):
        v = checks[cid].values
        assert v["surrogate"] == "pdsg" and v["spikes_per_sample"] > 0
        assert v["spikes_per_sample_adv"] > 0 and v["success_rate"] > 0
        assert v["l0_mean"] == pytest.approx(_mean_over_successes(checks[cid], "l0", correct))
        assert v["l0_mean"] >= 1
    budget = checks["sda-pdsg-budget20"].values
    assert budget["l0_mean"] <= 20 and budget["robust_accuracy"] > 0  # failures: not L0 = 0
    assert budget["over_budget"] >= 1
    free = checks["sda-pdsg"].values
    assert free["l0_mean"] > budget["l0_mean"]  # the unbounded run keeps the larger successes
    # SDA's finite-difference filter and reduction beat the naive top-|g| flip
    assert free["l0_mean"] < checks["naive-topk-flip"].values["l0_mean"]


@pytest.mark.data
def test_pdsg_example_suite_names_each_surrogate() -> None:
    data_dir_or_skip("nmnist_small_slayer")
    report = rbl.run_suite(EXAMPLE, quick=True, n=4)
    labels = {r.id: r.values.get("surrogate") for r in report.results if r.kind == "attack"}
    assert labels == {
        "sda-pdsg": "pdsg",
        "sda-atan2-matched": "atan(alpha=2)",
        "sda-atan10-narrow": "atan(alpha=10)",
        "sda-sigmoid4": "sigmoid(alpha=4)",
        "sda-ste": "ste",
    }
    alphas = {r.id: r.values.get("surrogate_alpha") for r in report.results}
    assert alphas["sda-atan10-narrow"] == 10.0 and alphas["sda-pdsg"] is None
    assert all(r.values["l0_mean"] >= 1 for r in report.results if r.kind == "attack")


def test_builtin_topk_quick_reports_sizes_over_successes() -> None:
    suite = replace(load_suite("builtin:topk"), shard_size=10)
    report = rbl.run_suite(suite, quick=True, n=20)
    assert report.passed, report.to_table()
    attacks = [r for r in report.results if r.kind == "attack"]
    assert {r.component for r in attacks} == {"quadattack", "cw_topk", "ad_topk"}
    correct = _clean_correct("zoo:digits-cnn", "digits", 20)
    for r in attacks:
        for norm in ("l1", "l2", "linf"):
            expected = _mean_over_successes(r, norm, correct)
            assert r.values[f"{norm}_mean"] == pytest.approx(expected, nan_ok=True)
    quad = _by_id(report)["quadattack-top3"].values
    assert quad["success_rate"] > 0 and quad["l2_mean"] > 0
    assert quad["linf_mean"] <= 1.0  # inputs stay in [0, 1]
    page = report.to_html()  # values beyond the main columns are on the page too
    assert "More values" in page and "l2_mean = " in page


def test_builtin_privacy_quick_inverts_every_private_class() -> None:
    report = rbl.run_suite("builtin:privacy", quick=True)
    assert [r.component for r in report.results] == ["mi_face", "gmi", "lomma"]
    for r in report.results:
        assert r.kind == "invert" and r.detail["classes"] == [0, 1, 2, 3, 4]
        v: dict[str, Any] = dict(r.values)
        assert 0 <= v["eval_top1"] <= v["eval_top5"] <= 1 and v["knn_dist"] > 0
        assert v["target_top1"] >= 0.8  # the target is fooled; the evaluator is the judge
        assert r.detail["eval_model"] == "zoo:digits-private-eval"
    # Their table rows have no accuracy columns: the values follow the table, one line a check.
    table = report.render("table").splitlines()
    for r in report.results:
        (line,) = [x for x in table if x.startswith(f"{r.id}: ")]
        assert f"eval_top1={r.values['eval_top1']:.4f}" in line


def test_invert_checks_take_only_inversion_attacks(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("version: 1\nname: s\nchecks:\n  - id: x\n    invert: pgd\n    expect: {}\n")
    with pytest.raises(
        SuiteError, match="does not invert models; inversion attacks: gmi, lomma, mi_face$"
    ):
        load_suite(path)
    path.write_text(
        "version: 1\nname: s\nchecks:\n  - id: x\n    invert: gmi\n"
        "    threat: linf:0.1\n    expect: {}\n"
    )
    with pytest.raises(SuiteError, match="takes no threat"):
        load_suite(path)
    path.write_text(
        "version: 1\nname: s\nchecks:\n  - id: x\n    invert: quadattack\n    expect: {}\n"
    )
    with pytest.raises(SuiteError, match="'quadattack' does not invert models"):
        load_suite(path)  # it takes none:targeted too, but reconstructs nothing

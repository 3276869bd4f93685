"""Size values over successes only, label values, and how the attack kind merges labels."""

from __future__ import annotations

import math

import pytest

from robustbench_lite.report.size_values import size_value_names, size_values
from robustbench_lite.report.snn_values import label_values
from robustbench_lite.report.values import attack_values, numeric
from robustbench_lite.suite.kinds.attack import merge_metric


def test_sizes_average_clean_correct_successes_only() -> None:
    clean = [True, True, True, False]
    success = [True, False, True, True]  # sample 3 was misclassified already: not counted
    sizes = {"l0": [4.0, 0.0, 10.0, 0.0], "l2": [1.0, 0.0, 3.0, 0.0]}
    values = size_values(clean, success, sizes)
    assert values == {"l0_mean": 7.0, "l0_median": 4.0, "l2_mean": 2.0, "l2_median": 1.0}
    assert set(values) == set(size_value_names(["l0", "l2"]))
    # the failure's L0 = 0 would give (4 + 0 + 10) / 3 if failures counted
    assert values["l0_mean"] != pytest.approx(14 / 3)


def test_no_success_gives_nan_not_zero() -> None:
    values = attack_values([True, True], [False, False], sizes={"l0": [0.0, 0.0]})
    assert math.isnan(values["l0_mean"]) and math.isnan(values["l0_median"])
    assert values["success_rate"] == 0.0


def test_labels_are_values_only_when_named_and_short() -> None:
    metrics = {"surrogate": "atan(alpha=2)", "eval_model": "zoo:x", "n": 3}
    assert label_values(metrics) == {"surrogate": "atan(alpha=2)"}
    assert numeric(metrics) == {"surrogate": "atan(alpha=2)", "n": 3}
    assert label_values({"surrogate": "x" * 200}) == {}


def test_cells_merge_labels_to_the_distinct_ones() -> None:
    assert merge_metric("surrogate", [("pdsg", 10), ("pdsg", 5)]) == "pdsg"
    assert merge_metric("surrogate", [("pdsg", 10), ("ste", 5)]) == "pdsg, ste"

"""Issue 21: hostile names render safely in every format, and ``--compare-fail`` cannot be
switched off by a NaN amount or a misspelled metric."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.report.compare import (
    baseline_metrics,
    load_baseline,
    metric_names,
    parse_fail_spec,
)
from robustbench_lite.report.formats import md_text, plain
from robustbench_lite.report.model import CheckResult, Report

HOSTILE = "<script>alert(1)</script> $\\frac{$ a$b$ `tick` |pipe| \x00\x07\x1b\n\r\ud800\ufffe &amp; [x](javascript:y) **b**"
EXAMPLES = {
    "shape": [1, 4, 4],
    "y": [3],
    "x": [[[[0.5] * 4] * 4]],
    "x_adv": [[[[0.6] * 4] * 4]],
    "adv_pred": [5],
    "success": [True],
}


def hostile_report() -> Report:
    def attack(eps: float) -> CheckResult:
        return CheckResult(
            id=f"{HOSTILE}@eps={eps:g}",
            kind="attack",
            component=f"pgd{HOSTILE}",
            threat=f"linf:{eps:g}{HOSTILE}",
            passed=False,
            values={"clean_accuracy": 1.0, "robust_accuracy": 0.5, "success_rate": 0.5},
            expect=(f"robust_accuracy >= 0.9 {HOSTILE}",),
            detail={
                "eps": eps,
                "norm": "linf",
                "goal": "untargeted",
                "defense": f"$\\frac{{{HOSTILE}",  # a '$' once crashed matplotlib's mathtext
                "examples": EXAMPLES,
                "failed": [f"robust_accuracy = 0.5000, expected >= 0.9 {HOSTILE}"],
            },
        )

    verify = CheckResult(
        id=f"smt{HOSTILE}",
        kind="verify",
        component="smt",
        threat="linf:0.1",
        passed=False,
        values={"verified_fraction": 0.5, "falsified_fraction": 0.5, "unknown_fraction": 0.0},
        detail={"soundness": f"SOUNDNESS BUG {HOSTILE}"},
    )
    detect = CheckResult(
        id="det",
        kind="detect",
        component="tminer",
        threat=None,
        passed=True,
        values={"flagged": True, "score": 2.0},
        detail={"evidence": {"triggers": [HOSTILE]}},
    )
    return Report(
        suite=HOSTILE,
        model=HOSTILE,
        results=(attack(0.05), attack(0.1), verify, detect),
        env={"seed": HOSTILE, "torch": HOSTILE, "executor": HOSTILE, "robustbench_lite": "x"},
    )


def test_markdown_escapes_every_name() -> None:
    md = hostile_report().to_markdown()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\x00" not in md and "\x07" not in md and "\x1b" not in md
    assert "$" not in md.replace("\\$", "")  # no math spans for GitHub to render
    assert "[x](javascript:y)" not in md and "\\[x\\](javascript:y)" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4  # header + one row per check: a newline in a name breaks none
    columns = {len(re.split(r"(?<!\\)\|", line)) for line in table}
    assert len(columns) == 1  # escaped pipes never add a column


def test_junit_is_valid_xml_whatever_the_names_hold() -> None:
    text = hostile_report().to_junit()
    root = ET.fromstring(text)
    assert root.tag == "testsuite" and len(root.findall("testcase")) == 4
    names = [case.get("name") or "" for case in root.findall("testcase")]
    assert all("<script>" in n and "\x00" not in n for n in names[:2])  # kept, as text
    assert root.find("testcase/failure") is not None


def test_html_escapes_names_and_draws_dollar_signs_in_figures() -> None:
    page = hostile_report().to_html()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Robust accuracy against epsilon" in page  # the sweep figure with the '$' legend
    assert "Verification outcomes" in page and page.count("data:image/png;base64,") >= 3


def test_plain_and_md_text() -> None:
    assert plain("a\nb\x00c\ud800") == "a b c\ufffd"
    assert md_text("<b>|`*_[]$") == "&lt;b&gt;\\|\\`\\*_\\[\\]\\$"


# ------------------------------------------------------------------ --compare-fail and baselines


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("robust_accuracy:nan", "finite number >= 0"),
        ("robust_accuracy:inf", "finite number >= 0"),
        ("robust_accuracy:-0.1", "finite number >= 0"),
        ("robust_accuracy:abc", "finite number >= 0"),
        ("robust_acuracy:0.02", "did you mean robust_accuracy"),
        ("robust_accuracy:0.02,clean_acc:0.01", "unknown metric 'clean_acc'"),
        ("robust_accuracy", "write METRIC:AMOUNT"),
        (":0.1", "write METRIC:AMOUNT"),
    ],
)
def test_compare_fail_refuses_bad_amounts_and_unknown_metrics(spec: str, needle: str) -> None:
    with pytest.raises(RobustbenchLiteError) as info:
        parse_fail_spec(spec)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_compare_fail_accepts_report_metrics_and_the_baseline_s() -> None:
    assert parse_fail_spec("robust_accuracy:0.02, verified_fraction:0") == {
        "robust_accuracy": 0.02,
        "verified_fraction": 0.0,
    }
    assert {"clean_accuracy", "success_rate", "soundness_violations"} <= set(metric_names())
    baseline = {"checks": [{"id": "a", "values": {"median_norm": 0.3, "note": "x", "n": math.nan}}]}
    assert baseline_metrics(baseline) == {"median_norm"}
    assert parse_fail_spec("median_norm:0.1", known=baseline_metrics(baseline)) == {
        "median_norm": 0.1
    }


def test_a_baseline_that_is_not_a_file_never_suggests_writing_there(tmp_path: Path) -> None:
    with pytest.raises(RobustbenchLiteError) as info:
        load_baseline("/dev/zero")
    assert "not a regular file" in str(info.value) and "--report /dev/zero" not in str(info.value)
    with pytest.raises(RobustbenchLiteError, match="not a regular file"):
        load_baseline(tmp_path)
    missing = tmp_path / "nope.json"
    with pytest.raises(RobustbenchLiteError) as info:
        load_baseline(missing)
    assert "does not exist" in str(info.value) and f"--report {missing}" not in str(info.value)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(RobustbenchLiteError, match="not a readable JSON report"):
        load_baseline(deep)
    deep.write_text(json.dumps({"schema": "x"}))
    with pytest.raises(RobustbenchLiteError, match="is not a robustbench_lite.report/1 report"):
        load_baseline(deep)


def test_the_text_table_carries_no_terminal_escapes() -> None:
    table = hostile_report().to_table()
    assert "\x1b" not in table and "\x00" not in table
    assert len(table.splitlines()) == 2 + 4  # header, rule, one line per check

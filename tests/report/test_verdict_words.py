"""Verdict words (issue 15, item 5): PASS/FAIL only for checks with an expectation, ``measured``
for the rest, and reused checks marked, in every format; the JSON only gains fields."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from robustbench_lite.report.formats import comparable, render
from robustbench_lite.report.model import CheckResult, Report


def check(
    cid: str, *, expect: tuple[str, ...] = (), passed: bool = True, **kw: object
) -> CheckResult:
    return CheckResult(
        id=cid,
        kind="attack",
        component="fgsm",
        threat="linf:0.1",
        passed=passed,
        values={"clean_accuracy": 0.1, "robust_accuracy": 0.05},
        expect=expect,
        elapsed_s=0.5,
        detail={"failed": ["robust_accuracy = 0.0500, expected >= 0.5"]} if not passed else {},
        **kw,  # type: ignore[arg-type]
    )


MEASURED = check("untrained")
PASSED = check("ok", expect=("robust_accuracy >= 0.0",))
FAILED = check("bad", expect=("robust_accuracy >= 0.5",), passed=False)


def report(*results: CheckResult) -> Report:
    return Report(suite="words", model="m", results=results, env={"seed": 0})


def table_results(text: str) -> dict[str, str]:
    """check id -> last column of the table."""
    rows = text.splitlines()[2:]
    return {row.split()[0]: row.split()[-1] for row in rows if row.strip()}


def test_verdict_of_a_check() -> None:
    assert (MEASURED.verdict, PASSED.verdict, FAILED.verdict) == ("measured", "pass", "fail")
    # a check without expectation that a cross-check failed (soundness) is a FAIL
    assert replace(MEASURED, passed=False).verdict == "fail"


@pytest.mark.parametrize(
    ("results", "verdict"),
    [
        ((MEASURED,), "measured"),
        ((MEASURED, PASSED), "pass"),
        ((MEASURED, PASSED, FAILED), "fail"),
        ((), "measured"),
    ],
)
def test_verdict_of_a_report(results: tuple[CheckResult, ...], verdict: str) -> None:
    assert report(*results).verdict == verdict


def test_json_keeps_passed_and_adds_verdict_and_reused() -> None:
    doc = json.loads(report(MEASURED, PASSED, FAILED).to_json())
    assert doc["schema"] == "robustbench_lite.report/1"
    assert doc["passed"] is False and doc["verdict"] == "fail"
    assert [(c["passed"], c["verdict"], c["reused"]) for c in doc["checks"]] == [
        (True, "measured", False),
        (True, "pass", False),
        (False, "fail", False),
    ]
    old_keys = {"id", "kind", "component", "threat", "passed", "values", "expect", "elapsed_s"}
    assert all(old_keys | {"detail"} <= set(c) for c in doc["checks"])
    alone = json.loads(report(MEASURED).to_json())
    assert alone["passed"] is True and alone["verdict"] == "measured"


def test_table_says_measured_not_pass_without_an_expectation() -> None:
    text = report(MEASURED, PASSED, FAILED).to_table()
    assert table_results(text) == {"untrained": "measured", "ok": "PASS", "bad": "FAIL"}
    assert "reused" not in text.splitlines()[0]  # no column when nothing was reused


def test_markdown_headline_counts_and_cells() -> None:
    md = report(MEASURED).to_markdown()
    assert "**MEASURED** (0/1 checks passed, 1 measured without an expectation)" in md
    assert md.count("| measured |") == 1 and "| pass |" not in md and "PASS" not in md
    mixed = report(MEASURED, PASSED, FAILED).to_markdown()
    assert "**FAILED** (1/3 checks passed, 1 measured without an expectation)" in mixed
    assert "| pass |" in mixed and "| **FAIL** |" in mixed and "| measured |" in mixed


def test_junit_measured_is_no_failure_and_carries_its_verdict() -> None:
    root = ET.fromstring(report(MEASURED, PASSED, FAILED).to_junit())
    assert root.get("tests") == "3" and root.get("failures") == "1"
    verdicts = {}
    for case in root.findall("testcase"):
        props = {p.get("name"): p.get("value") for p in case.findall("properties/property")}
        verdicts[case.get("name")] = props["verdict"]
        assert props["reused"] == "false"
    assert verdicts == {"untrained": "measured", "ok": "pass", "bad": "fail"}
    untrained = root.find("testcase[@name='untrained']")
    assert untrained is not None and untrained.find("failure") is None
    assert "measured: no expectation" in (untrained.findtext("system-out") or "")


def test_html_verdict_badge_and_result_cells() -> None:
    page = report(MEASURED).to_html()
    assert "<span class='verdict measured'>MEASURED</span>" in page
    assert "<td>measured</td></tr>" in page and "PASS" not in page
    mixed = report(MEASURED, PASSED, FAILED).to_html()
    assert "<td>PASS</td></tr>" in mixed and "<td><b>FAIL</b></td></tr>" in mixed


def test_every_format_marks_reused_checks() -> None:
    reused = replace(PASSED, reused=True)
    r = report(reused, MEASURED)
    assert r.reused_checks == 1
    table = r.to_table().splitlines()
    assert table[0].split()[-2:] == ["reused", "result"]
    assert table[2].split()[-2:] == ["yes", "PASS"] and table[3].split()[-2:] == ["-", "measured"]
    doc = json.loads(r.to_json())
    assert [c["reused"] for c in doc["checks"]] == [True, False]
    md = r.to_markdown()
    assert "1 of 2 checks reused from the results store" in md
    assert "| reused | result |" in md and "| yes | pass |" in md and "| - | measured |" in md
    case = ET.fromstring(r.to_junit()).find("testcase[@name='ok']")
    assert case is not None
    assert case.find("properties/property[@name='reused']").get("value") == "true"  # type: ignore[union-attr]
    assert "reused from the results store" in (case.findtext("system-out") or "")
    page = render(r, "html")
    assert "<th>reused</th>" in page and "1 of 2 checks reused" in page


def test_reused_does_not_change_the_comparable_report() -> None:
    assert comparable(report(replace(PASSED, reused=True))) == comparable(report(PASSED))

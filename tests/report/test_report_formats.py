"""Report renderings: JSON contract with per-cell detail, Markdown, JUnit XML, self-contained HTML."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from robustbench_lite.report.formats import format_for, render
from robustbench_lite.report.model import CheckResult, Report

EXAMPLES = {
    "shape": [1, 8, 8],
    "y": [3, 1],
    "x": [[[[0.5] * 8] * 8]] * 2,
    "x_adv": [[[[0.6] * 8] * 8]] * 2,
    "adv_pred": [5, 1],
    "success": [True, False],
}


def attack(eps: float, acc: float, passed: bool = True) -> CheckResult:
    return CheckResult(
        id=f"pgd@eps={eps:g}",
        kind="attack",
        component="pgd",
        threat=f"linf:{eps:g}",
        passed=passed,
        values={"clean_accuracy": 0.98, "robust_accuracy": acc, "success_rate": 1 - acc / 0.98},
        expect=("robust_accuracy >= 0.5",),
        elapsed_s=1.25,
        detail={
            "n": 2,
            "eps": eps,
            "norm": "linf",
            "goal": "untargeted",
            "defense": None,
            "examples": EXAMPLES,
            "cells": [
                {"shard": 0, "start": 0, "stop": 2, "elapsed_s": 1.25, "robust_accuracy": acc}
            ],
            **({} if passed else {"failed": [f"robust_accuracy = {acc:.4f}, expected >= 0.5"]}),
        },
    )


def sample_report() -> Report:
    verify = CheckResult(
        id="smt",
        kind="verify",
        component="smt",
        threat="linf:0.05",
        passed=False,
        values={
            "verified_fraction": 0.5,
            "falsified_fraction": 0.25,
            "unknown_fraction": 0.25,
            "soundness_violations": 1,
        },
        detail={
            "soundness": "SOUNDNESS BUG: smt VERIFIED 1 sample(s) that attacks broke inside the verified set: {'pgd': [0]}"
        },
    )
    checks = (
        CheckResult(
            "clean",
            "clean",
            None,
            None,
            True,
            {"clean_accuracy": 0.98},
            ("clean_accuracy >= 0.9",),
            0.1,
        ),
        attack(0.05, 0.8),
        attack(0.1, 0.55),
        attack(0.2, 0.1, passed=False),
        verify,
    )
    return Report(
        suite="demo <suite>", model="zoo:digits-cnn", results=checks, env={"seed": 0, "torch": "x"}
    )


def test_json_contract_and_per_cell_detail() -> None:
    doc = json.loads(sample_report().to_json())
    assert (
        doc["schema"] == "robustbench_lite.report/1"
        and doc["passed"] is False
        and doc["model"] == "zoo:digits-cnn"
    )
    check = doc["checks"][1]
    assert set(check) >= {
        "id",
        "kind",
        "component",
        "threat",
        "passed",
        "values",
        "elapsed_s",
        "detail",
    }
    assert check["detail"]["cells"][0] == {
        "shard": 0,
        "start": 0,
        "stop": 2,
        "elapsed_s": 1.25,
        "robust_accuracy": 0.8,
    }


def test_markdown_has_verdict_soundness_alert_and_failures() -> None:
    md = sample_report().to_markdown()
    assert (
        md.startswith("# Robustness report: demo &lt;suite&gt;")  # names are escaped
        and "**FAILED**" in md
        and "(3/5 checks passed)" in md
    )
    assert "> **smt: SOUNDNESS BUG" in md
    assert "| pgd@eps=0.2 | attack | pgd | linf:0.2 | 0.9800 | 0.1000 |" in md
    assert "- `pgd@eps=0.2`: robust_accuracy = 0.1000, expected &gt;= 0.5" in md


def test_junit_is_valid_xml_with_one_case_per_check() -> None:
    root = ET.fromstring(sample_report().to_junit())
    assert root.tag == "testsuite" and root.get("tests") == "5" and root.get("failures") == "2"
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "clean",
        "pgd@eps=0.05",
        "pgd@eps=0.1",
        "pgd@eps=0.2",
        "smt",
    ]
    failure = cases[3].find("failure")
    assert (
        failure is not None
        and failure.get("message") == "robust_accuracy = 0.1000, expected >= 0.5"
    )
    assert "SOUNDNESS BUG" in (cases[4].find("failure").get("message") or "")  # type: ignore[union-attr]


def test_html_is_self_contained_with_figures() -> None:
    page = sample_report().to_html()
    assert (
        page.startswith("<!DOCTYPE html>")
        and "demo &lt;suite&gt;" in page
        and "<suite>" not in page
    )
    assert "http://" not in page and "https://" not in page and "<script" not in page
    images = page.split("src='data:image/png;base64,")[1:]
    assert len(images) == 5  # eps sweep, 3 example grids, verification outcomes
    for chunk in images:
        assert base64.b64decode(chunk.split("'", 1)[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        "Robust accuracy against epsilon" in page
        and "class='alert'" in page
        and "SOUNDNESS BUG" in page
    )


def test_no_sweep_figure_without_an_eps_sweep() -> None:
    report = sample_report()
    single = Report(report.suite, report.model, report.results[:2], report.env)
    assert "Robust accuracy against epsilon" not in single.to_html()


def test_format_choice() -> None:
    assert [format_for(p, None) for p in ("r.json", "r.md", "r.xml", "r.html", None)] == [
        "json",
        "md",
        "junit",
        "html",
        "table",
    ]
    assert format_for("r.json", "md") == "md"
    assert render(sample_report(), "table").splitlines()[0].startswith("check")


@pytest.mark.slow
def test_html_renders_in_a_headless_browser(tmp_path: Path) -> None:
    browser = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if browser is None:
        pytest.skip(
            "no headless chromium here (apt-get install chromium) to render the HTML report"
        )
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    page.write_text(sample_report().to_html())
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1200,1600",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
            env={**os.environ, "HOME": profile},
        )
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels[..., :3].std() > 0.05  # the page drew content, not a blank sheet


def test_flagged_detection_shows_its_recovered_triggers_in_every_human_format() -> None:
    def scan(cid: str, flagged: bool, triggers: list[str]) -> CheckResult:
        return CheckResult(
            cid,
            "detect",
            "tminer",
            None,
            not flagged,
            {"flagged": flagged, "score": float(len(triggers))},
            ("flagged == false",),
            40.0,
            {"threshold": 1.0, "evidence": {"triggers": triggers}},
        )

    report = Report(
        suite="trojans",
        model="zoo:text",
        env={"seed": 0},
        results=(
            scan("scan-a", True, ["deceptively reacting", "reacting"]),
            scan("scan-b", False, []),
        ),
    )
    line = "scan-a: tminer flagged the model (score 2.0000); recovered triggers: 'deceptively reacting', 'reacting'"
    for fmt in ("md", "table", "html"):
        text = render(report, fmt).replace("&#x27;", "'")
        assert line in text, fmt
        assert "scan-b: tminer flagged" not in text, fmt

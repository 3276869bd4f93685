"""Report renderings besides JSON and the table: Markdown, JUnit XML, and format dispatch."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from robustbench_lite.errors import RobustbenchLiteError
from robustbench_lite.report import CheckResult, Report, format_seconds

FORMATS = ("table", "json", "md", "junit", "html")
_SUFFIXES = {".json": "json", ".md": "md", ".markdown": "md", ".xml": "junit", ".html": "html",
             ".htm": "html", ".txt": "table"}  # fmt: skip
MAIN_VALUES = ("clean_accuracy", "robust_accuracy", "success_rate", "verified_fraction", "flagged")


def format_for(path: str | Path | None, fmt: str | None) -> str:
    """The format to write: ``fmt`` if given, else from the file suffix, else JSON."""
    if fmt:
        if fmt not in FORMATS:
            raise RobustbenchLiteError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    return _SUFFIXES.get(Path(path).suffix.lower(), "json") if path else "table"


def render(report: Report, fmt: str) -> str:
    """``report`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "table":
        return "\n".join([report.to_table(), *detection_messages(report)])
    if fmt == "json":
        return report.to_json()
    if fmt == "md":
        return to_markdown(report)
    if fmt == "junit":
        return to_junit(report)
    if fmt == "html":
        from robustbench_lite.report_html import to_html

        return to_html(report)
    raise RobustbenchLiteError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def value_text(value: Any) -> str:
    """A metric for humans: 4 decimals for floats, ``-`` for missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def soundness_messages(report: Report) -> list[str]:
    """The loud lines: one per verify check that VERIFIED a sample an attack broke."""
    return [f"{r.id}: {r.detail['soundness']}" for r in report.results if r.detail.get("soundness")]


def detection_messages(report: Report) -> list[str]:
    """One line per flagged detect check: its score and the trigger phrases it recovered."""
    lines = []
    for r in report.results:
        if r.kind != "detect" or not r.values.get("flagged"):
            continue
        triggers = list(r.detail.get("evidence", {}).get("triggers", []))
        shown = ", ".join(repr(str(t)) for t in triggers[:10]) + (f" (+{len(triggers) - 10} more)" if len(triggers) > 10 else "")
        lines.append(f"{r.id}: {r.component} flagged the model (score {value_text(r.values.get('score'))})"
                     + (f"; recovered triggers: {shown}" if triggers else ""))
    return lines


def to_markdown(report: Report) -> str:
    """A GitHub-flavoured Markdown summary: verdict, soundness alerts, and a table of checks."""
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [f"# Robustness report: {report.suite}", "", f"Model `{report.model}`: **{verdict}** "
             f"({sum(r.passed for r in report.results)}/{len(report.results)} checks passed)", ""]  # fmt: skip
    for msg in soundness_messages(report):
        lines += [f"> **{msg}**", ""]
    header = ["check", "kind", "component", "threat", *MAIN_VALUES, "expect", "time (s)", "result"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in report.results:
        cells = [r.id, r.kind, r.component or "-", r.threat or "-",
                 *(value_text(r.values.get(k)) for k in MAIN_VALUES),
                 "; ".join(r.expect) or "-", format_seconds(r.elapsed_s), "pass" if r.passed else "**FAIL**"]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    failures = [(r.id, f) for r in report.results for f in r.detail.get("failed", [])]
    if failures:
        lines += ["", "## Failed expectations", ""] + [f"- `{cid}`: {f}" for cid, f in failures]
    detections = detection_messages(report)
    if detections:
        lines += ["", "## Detections", ""] + [f"- {m}" for m in detections]
    env = report.env
    lines += ["", f"seed {env.get('seed', '-')}, robustbench_lite {env.get('robustbench_lite', '-')}, "
              f"torch {env.get('torch', '-')}, executor {env.get('executor', '-')}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def to_junit(report: Report) -> str:
    """JUnit XML: one testsuite, one testcase per check; failed expectations are failures."""
    suite = ET.Element("testsuite", {
        "name": f"robustbench_lite.{report.suite}", "tests": str(len(report.results)),
        "failures": str(sum(not r.passed for r in report.results)), "errors": "0",
        "time": f"{sum(r.elapsed_s for r in report.results):.3f}",
    })  # fmt: skip
    props = ET.SubElement(suite, "properties")
    for key in ("seed", "robustbench_lite", "torch", "executor"):
        if key in report.env:
            ET.SubElement(props, "property", {"name": key, "value": str(report.env[key])})
    ET.SubElement(props, "property", {"name": "model", "value": report.model})
    for r in report.results:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"{report.suite}.{r.kind}", "name": r.id, "time": f"{r.elapsed_s:.3f}"})
        ET.SubElement(case, "system-out").text = _values_line(r)
        if not r.passed:
            reasons = list(r.detail.get("failed", [])) + ([r.detail["soundness"]] if r.detail.get("soundness") else [])
            text = "; ".join(reasons) or "expectation failed"
            ET.SubElement(case, "failure", {"message": text, "type": "ExpectationFailed"}).text = text
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _values_line(r: CheckResult) -> str:
    return ", ".join(f"{k}={value_text(v)}" for k, v in r.values.items())


def comparable(report: Report) -> dict[str, Any]:
    """The report without what legitimately varies between runs (timings, environment).

    Two runs of one suite on one model with one seed give equal ``comparable`` dicts, whatever
    the executor and however often the run was interrupted and resumed.
    """
    doc = report.to_dict()
    doc.pop("env", None)
    for check in doc["checks"]:
        check.pop("elapsed_s", None)
        check.get("detail", {}).pop("timing", None)
        for cell in check.get("detail", {}).get("cells", []):
            cell.pop("elapsed_s", None)
    return doc

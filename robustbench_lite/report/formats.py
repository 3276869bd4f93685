"""Report formats as a catalog: table, json, md and junit here, html in :mod:`.html`.

A format is a name, the file suffixes that select it and a function ``Report -> str``. Third
parties add formats through the ``robustbench_lite.report_formats`` entry-point group (a module
that calls :func:`register_format` on import); the built-in html format comes the same way.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustbench_lite.core.errors import RobustbenchLiteError
from robustbench_lite.core.registry import Catalog

if TYPE_CHECKING:
    from robustbench_lite.report.model import CheckResult, Report

MAIN_VALUES = ("clean_accuracy", "robust_accuracy", "success_rate", "verified_fraction", "flagged")


@dataclass(frozen=True)
class ReportFormat:
    """One rendering of a report.

    Args:
        name: what ``--format`` takes, e.g. ``md``.
        render: the report as text in this format.
        suffixes: file suffixes (lower case, with the dot) that select it when no format is named.
    """

    name: str
    render: Callable[[Report], str]
    suffixes: tuple[str, ...] = ()


FORMATS: Catalog[ReportFormat] = Catalog("report format", "robustbench_lite.report_formats")


def register_format(fmt: ReportFormat) -> ReportFormat:
    """Add ``fmt`` to :data:`FORMATS` (called by each format's module on import)."""
    return FORMATS.add(fmt.name, fmt)


def format_names() -> list[str]:
    """Every registered format name, for ``--format`` choices and messages."""
    return FORMATS.names()


def format_for(path: str | Path | None, fmt: str | None) -> str:
    """The format to write: ``fmt`` if given, else from the file suffix, else JSON (table on stdout)."""
    if fmt:
        if fmt not in FORMATS:
            raise RobustbenchLiteError(
                f"unknown report format {fmt!r}; choose one of {', '.join(format_names())}"
            )
        return fmt
    if not path:
        return "table"
    suffix = Path(path).suffix.lower()
    return next((name for name in format_names() if suffix in FORMATS.get(name).suffixes), "json")


def render(report: Report, fmt: str) -> str:
    """``report`` in format ``fmt`` (a name in :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise RobustbenchLiteError(
            f"unknown report format {fmt!r}; choose one of {', '.join(format_names())}"
        )
    return FORMATS.get(fmt).render(report)


def format_seconds(seconds: float) -> str:
    """Wall time for tables: two decimals under 10 s (a fast check is not shown as 0.0)."""
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


#: The word each format shows for a verdict (``measured``: a value with no expectation).
VERDICT_WORDS = {"pass": "PASS", "fail": "FAIL", "measured": "measured"}


def verdict_word(r: CheckResult) -> str:
    """``PASS``, ``FAIL`` or ``measured`` (a check without an expectation neither passes nor fails)."""
    return VERDICT_WORDS[r.verdict]


def verdict_counts(report: Report) -> str:
    """``3/5 checks passed``, with ``, 2 measured`` when checks without expectations ran."""
    text = f"{report.count('pass')}/{len(report.results)} checks passed"
    measured = report.count("measured")
    return text + (f", {measured} measured without an expectation" if measured else "")


def reused_text(r: CheckResult) -> str:
    """The reused column: ``yes`` for a check taken whole from the results store."""
    return "yes" if r.reused else "-"


def to_table(report: Report) -> str:
    """A plain-text table: one row per check with its main values; the result is PASS or
    FAIL for checks with expectations and ``measured`` for the rest. A ``reused`` column
    appears when some check came from the results store."""
    reused = report.reused_checks > 0
    header = (
        "check",
        "kind",
        "threat",
        "clean_acc",
        "robust_acc",
        "time_s",
        *(("reused",) if reused else ()),
        "result",
    )
    rows = [header]
    for r in report.results:
        rows.append(
            (
                r.id,
                r.kind,
                r.threat or "-",
                _fmt(r.values.get("clean_accuracy")),
                _fmt(r.values.get("robust_accuracy")),
                format_seconds(r.elapsed_s),
                *((reused_text(r),) if reused else ()),
                verdict_word(r),
            )
        )
    cells = [[plain(c) for c in row] for row in rows]  # no terminal escapes from names
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _table_with_alerts(report: Report) -> str:
    from robustbench_lite.report.adaptive_values import adaptive_lines
    from robustbench_lite.report.scaling import scaling_lines
    from robustbench_lite.report.verify_search import search_lines

    notes = [
        *_rowless_values(report),
        *adaptive_lines(report.results),
        *scaling_lines(report.results),
        *search_lines(report.results),
    ]
    lines = [plain(line) for line in notes]
    return "\n".join([to_table(report), *detection_messages(report), *lines])


def _rowless_values(report: Report) -> list[str]:
    """One line of values for each check whose table row shows none (an ``invert`` check has no
    clean or robust accuracy; its values are ``target_top1``, ``eval_top1``, ...)."""
    return [
        f"{r.id}: {_values_line(r)}"
        for r in report.results
        if r.kind != "detect"
        and r.values
        and r.values.get("clean_accuracy") is None
        and r.values.get("robust_accuracy") is None
    ]


def to_json(report: Report) -> str:
    """Pretty JSON following the report schema (NaN written as null)."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=False)


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
    """One line per flagged check (a detector's verdict): its score and the trigger phrases it
    recovered. Sections follow the values a result carries, not its kind's name."""
    lines = []
    for r in report.results:
        if r.values.get("flagged") is not True:
            continue
        triggers = list(r.detail.get("evidence", {}).get("triggers", []))
        shown = ", ".join(repr(str(t)) for t in triggers[:10]) + (
            f" (+{len(triggers) - 10} more)" if len(triggers) > 10 else ""
        )
        lines.append(
            f"{r.id}: {r.component} flagged the model (score {value_text(r.values.get('score'))})"
            + (f"; recovered triggers: {shown}" if triggers else "")
        )
    return lines


#: Characters XML 1.0 does not allow (C0 controls but tab/newline/return, surrogates, U+FFFE/F).
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Control characters (C0, DEL, C1): a name with a newline must not break a table row.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: Markdown punctuation that could start emphasis, code, links, math (``$``) or table cells.
_MD_PUNCT = re.compile(r"([\\`*\[\]|$])")


def plain(value: Any) -> str:
    """``value`` as text on one line: control characters (newlines too) become spaces and
    characters XML 1.0 forbids become U+FFFD. Every format renders names through this."""
    return _NOT_XML.sub("\ufffd", _CONTROL.sub(" ", str(value)))


def md_text(value: Any) -> str:
    """``value`` as literal Markdown text: one line, ``& < >`` as entities (no raw HTML such
    as ``<script>`` reaches a renderer) and Markdown punctuation backslash-escaped."""
    text = plain(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_PUNCT.sub(r"\\\1", text)


def md_code(value: Any) -> str:
    """``value`` as inline code: a backtick span when that is literal, else ``<code>`` with
    entities (a backtick span cannot hold ``<``-text safely in every renderer)."""
    text = plain(value)
    if re.search(r"[`<>&|$\\]", text) or not text.strip():
        return f"<code>{md_text(text)}</code>"
    return f"`{text}`"


def to_markdown(report: Report) -> str:
    """A GitHub-flavoured Markdown summary: verdict, soundness alerts, and a table of checks.
    Every name is escaped (:func:`md_text`): a hostile check id renders as text."""
    verdict = {"pass": "PASSED", "fail": "FAILED", "measured": "MEASURED"}[report.verdict]
    lines = [
        f"# Robustness report: {md_text(report.suite)}",
        "",
        f"Model {md_code(report.model)}: **{verdict}** ({verdict_counts(report)})",
        "",
    ]
    if report.reused_checks:
        lines += [
            f"{report.reused_checks} of {len(report.results)} checks reused from the results "
            "store (values and times of the earlier run; --fresh recomputes).",
            "",
        ]
    for msg in soundness_messages(report):
        lines += [f"> **{md_text(msg)}**", ""]
    reused = report.reused_checks > 0
    header = [
        "check",
        "kind",
        "component",
        "threat",
        *MAIN_VALUES,
        "expect",
        "time (s)",
        *(["reused"] if reused else []),
        "result",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in report.results:
        cells = [
            r.id,
            r.kind,
            r.component or "-",
            r.threat or "-",
            *(value_text(r.values.get(k)) for k in MAIN_VALUES),
            "; ".join(r.expect) or "-",
            format_seconds(r.elapsed_s),
            *([reused_text(r)] if reused else []),
            {"pass": "pass", "fail": "**FAIL**", "measured": "measured"}[r.verdict],
        ]
        lines.append("| " + " | ".join(md_text(c) for c in cells[:-1]) + f" | {cells[-1]} |")
    failures = [(r.id, f) for r in report.results for f in r.detail.get("failed", [])]
    if failures:
        lines += ["", "## Failed expectations", ""] + [
            f"- {md_code(cid)}: {md_text(f)}" for cid, f in failures
        ]
    detections = detection_messages(report)
    if detections:
        lines += ["", "## Detections", ""] + [f"- {md_text(m)}" for m in detections]
    from robustbench_lite.report.adaptive_values import adaptive_lines
    from robustbench_lite.report.scaling import scaling_lines

    adaptive = adaptive_lines(report.results)
    if adaptive:  # defended models: which gradients, masking, judging over draws
        lines += ["", "## Adaptive attacks", ""] + [f"- {md_text(m)}" for m in adaptive]
    scaling = scaling_lines(report.results)
    if scaling:  # eps sweeps: power law, tilting angle, masking flags (report/scaling.py)
        lines += ["", "## Robustness scaling", ""] + [
            ("  - " if m.startswith("  ") else "- ") + md_text(m.strip()) for m in scaling
        ]
    from robustbench_lite.report.verify_search import search_lines

    search = search_lines(report.results)
    if search:  # verifiers: methods, domains, seconds per phase (report/verify_search.py)
        lines += ["", "## Verifier search", ""] + [f"- {md_text(m)}" for m in search]
    env = report.env
    lines += [
        "",
        md_text(
            f"seed {env.get('seed', '-')}, robustbench_lite {env.get('robustbench_lite', '-')}, "
            f"torch {env.get('torch', '-')}, executor {env.get('executor', '-')}"
        ),
    ]
    return "\n".join(lines) + "\n"


def to_junit(report: Report) -> str:
    """JUnit XML: one testsuite, one testcase per check; failed expectations are failures.
    Names pass through :func:`plain`, so the document is well-formed XML 1.0 whatever they hold
    (ElementTree escapes ``<&>`` and quotes but writes control characters as they are)."""
    suite = ET.Element(
        "testsuite",
        {
            "name": plain(f"robustbench_lite.{report.suite}"),
            "tests": str(len(report.results)),
            "failures": str(sum(not r.passed for r in report.results)),
            "errors": "0",
            "time": f"{sum(r.elapsed_s for r in report.results):.3f}",
        },
    )
    props = ET.SubElement(suite, "properties")
    for key in ("seed", "robustbench_lite", "torch", "executor"):
        if key in report.env:
            ET.SubElement(props, "property", {"name": key, "value": plain(report.env[key])})
    ET.SubElement(props, "property", {"name": "model", "value": plain(report.model)})
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": plain(f"{report.suite}.{r.kind}"),
                "name": plain(r.id),
                "time": f"{r.elapsed_s:.3f}",
            },
        )
        case_props = ET.SubElement(case, "properties")
        ET.SubElement(case_props, "property", {"name": "verdict", "value": r.verdict})
        ET.SubElement(case_props, "property", {"name": "reused", "value": str(r.reused).lower()})
        ET.SubElement(case, "system-out").text = plain(_junit_out(r))
        if not r.passed:
            reasons = list(r.detail.get("failed", [])) + (
                [r.detail["soundness"]] if r.detail.get("soundness") else []
            )
            text = plain("; ".join(str(reason) for reason in reasons) or "expectation failed")
            ET.SubElement(
                case, "failure", {"message": text, "type": "ExpectationFailed"}
            ).text = text
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def _values_line(r: CheckResult) -> str:
    return ", ".join(f"{k}={value_text(v)}" for k, v in r.values.items())


def _junit_out(r: CheckResult) -> str:
    """A testcase's output: its values, then what the verdict means when it is no pass/fail."""
    notes = []
    if r.verdict == "measured":
        notes.append("measured: no expectation, nothing passed or failed")
    if r.reused:
        notes.append("reused from the results store")
    return "; ".join([_values_line(r), *notes])


def comparable(report: Report) -> dict[str, Any]:
    """The report without what legitimately varies between runs (timings, environment).

    Two runs of one suite on one model with one seed give equal ``comparable`` dicts, whatever
    the executor and however often the run was interrupted and resumed (``reused`` differs).
    """
    doc = report.to_dict()
    doc.pop("env", None)
    for check in doc["checks"]:
        check.pop("elapsed_s", None)
        check.pop("reused", None)
        check.get("detail", {}).pop("timing", None)
        for cell in check.get("detail", {}).get("cells", []):
            cell.pop("elapsed_s", None)
    return doc


register_format(ReportFormat("table", _table_with_alerts, (".txt",)))
register_format(ReportFormat("json", to_json, (".json",)))
register_format(ReportFormat("md", to_markdown, (".md", ".markdown")))
register_format(ReportFormat("junit", to_junit, (".xml",)))

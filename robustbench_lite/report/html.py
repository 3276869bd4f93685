"""One self-contained HTML page per report: verdict, soundness alerts, figures and all checks.

Figures are drawn with matplotlib's object API (no pyplot state) and embedded as base64 PNG:
robust accuracy against eps (when the suite sweeps eps), a grid of clean and adversarial
examples with their labels, and verification outcomes. The page loads nothing from outside.
Registered as the ``html`` format through the ``robustbench_lite.report_formats`` entry point.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from robustbench_lite.report.certified import certified_figure
from robustbench_lite.report.formats import (
    MAIN_VALUES,
    ReportFormat,
    detection_messages,
    format_seconds,
    plain,
    register_format,
    reused_text,
    soundness_messages,
    value_text,
    verdict_counts,
    verdict_word,
)
from robustbench_lite.report.scaling import sweeps
from robustbench_lite.report.scaling_plot import html_section
from robustbench_lite.report.values_html import more_values_section

if TYPE_CHECKING:
    from robustbench_lite.report.model import CheckResult, Report

MAX_GRID_CHECKS = 4
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1120px;color:#1f2328;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{font-size:1.2em;margin-top:28px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a;font-size:.9em}.verdict{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.pass{background:#1a7f37}.fail{background:#cf222e}.measured{background:#57606a}
.alert{background:#ffebe9;border:2px solid #cf222e;color:#82071e;padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:.82em}.bad{color:#cf222e;font-weight:600}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.failed td{background:#fff5f5}
.scroll{overflow-x:auto}td.id{white-space:nowrap;font-family:ui-monospace,monospace}
img{max-width:100%;border:1px solid #d0d7de;border-radius:4px}.fig{margin:8px 0 16px}
"""


def to_html(report: Report) -> str:
    """The report as one HTML page with embedded figures.

    Every name is HTML-escaped (:func:`_e`); figure labels are drawn with matplotlib's math
    parsing off, so a ``$`` in a check or defense name is a dollar sign, not broken mathtext."""
    import warnings

    import matplotlib

    with (
        matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}),
        warnings.catch_warnings(),
    ):  # long names can squeeze a figure; the layout falls back, the page is still whole
        warnings.filterwarnings("ignore", "constrained_layout not applied", UserWarning)
        return _page(report)


def _label(value: Any, limit: int = 60) -> str:
    """A figure label: one line (:func:`plain`), at most ``limit`` characters."""
    text = plain(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _page(report: Report) -> str:
    verdict = report.verdict
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>robustbench_lite: {_e(report.suite)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Robustness report: {_e(report.suite)}</h1>",
        f"<p class='meta'>model <code>{_e(report.model)}</code> &middot; "
        f"<span class='verdict {verdict}'>{verdict.upper()}</span> &middot; "
        f"{_e(verdict_counts(report))} &middot; "
        f"seed {_e(report.env.get('seed', '-'))} &middot; robustbench_lite {_e(report.env.get('robustbench_lite', '-'))}"
        f" &middot; torch {_e(report.env.get('torch', '-'))}</p>",
    ]
    parts += [f"<div class='alert'>{_e(m)}</div>" for m in soundness_messages(report)]
    if report.reused_checks:
        parts.append(
            f"<p class='meta'>{report.reused_checks} of {len(report.results)} checks reused "
            "from the results store (values and times of the earlier run; --fresh recomputes)</p>"
        )
    parts += ["<h2>Checks</h2>", _table(report)]
    parts += more_values_section(report.results)  # l0_mean, surrogate, eval_top1, ...
    detections = detection_messages(report)
    if detections:
        parts += [
            "<h2>Detections</h2>",
            "<ul>",
            *(f"<li>{_e(m)}</li>" for m in detections),
            "</ul>",
        ]
    sweep = _sweep_figure(report.results)
    if sweep:
        parts += [
            "<h2>Robust accuracy against epsilon</h2>",
            _img(sweep, "robust accuracy against eps"),
        ]
    parts += html_section(sweeps(report.results))  # power law, tilting angle, masking flags
    grids = _grid_checks(report.results)
    if grids:
        parts.append("<h2>Clean and adversarial examples</h2>")
        parts.append(
            "<p class='meta'>Top row: clean input with its true label. Bottom row: adversarial input "
            "with the model's prediction (red when the attack succeeded).</p>"
        )
        for r in grids:
            png = _grid_figure(r)
            if png:
                parts += [
                    f"<h3>{_e(r.id)} <span class='meta'>({_e(r.component)}, {_e(r.threat)})</span></h3>",
                    _img(png, f"examples of {r.id}"),
                ]
    fusion = [r for r in report.results if r.detail.get("fusion_examples")]
    if fusion:  # attacks on fusion detectors: camera images with the patch, and the heatmap
        from robustbench_lite.report.fusion_html import fusion_figure

        parts.append("<h2>Camera patches on the fusion detector</h2>")
        for r in fusion:
            parts += [
                f"<h3>{_e(r.id)} <span class='meta'>({_e(r.component)}, {_e(r.threat)})</span></h3>",
                _img(fusion_figure(r.detail["fusion_examples"]), f"camera patches of {r.id}"),
            ]
    verify = [r for r in report.results if "verified_fraction" in r.values]
    if verify:
        parts += [
            "<h2>Verification outcomes</h2>",
            _img(_verify_figure(verify), "verification outcomes"),
        ]
    certified = certified_figure(report.results)
    if certified:
        parts += [
            "<h2>Certified accuracy against radius</h2>",
            _img(certified, "certified accuracy against l2 radius"),
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _e(value: Any) -> str:
    """``value`` as HTML text: one line (:func:`plain`), ``& < > " '`` escaped."""
    return html.escape(plain(value))


def _table(report: Report) -> str:
    shown = [k for k in MAIN_VALUES if any(k in r.values for r in report.results)]
    reused = report.reused_checks > 0
    head = [
        "check",
        "kind",
        "component",
        "threat",
        "defense",
        *(k.replace("_", " ") for k in shown),
        "expect",
        "time (s)",
        *(["reused"] if reused else []),
        "result",
    ]
    rows = [
        "<div class='scroll'><table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
    ]
    for r in report.results:
        nums = "".join(f"<td class='num'>{_e(value_text(r.values.get(k)))}</td>" for k in shown)
        result = f"<b>{verdict_word(r)}</b>" if r.verdict == "fail" else verdict_word(r)
        stored = f"<td>{reused_text(r)}</td>" if reused else ""
        rows.append(
            f"<tr class='{'ok' if r.passed else 'failed'}'><td class='id'>{_e(r.id)}</td><td>{_e(r.kind)}</td>"
            f"<td>{_e(r.component or '-')}</td><td>{_e(r.threat or '-')}</td><td>{_e(r.detail.get('defense') or '-')}</td>"
            f"{nums}<td>{_expect_cell(r)}</td>"
            f"<td class='num'>{format_seconds(r.elapsed_s)}</td>{stored}<td>{result}</td></tr>"
        )
    return "\n".join(rows) + "</table></div>"


def _expect_cell(r: CheckResult) -> str:
    """Each expectation; a failed one in red with the value it got."""
    failed = {f.split(" = ", 1)[0] for f in r.detail.get("failed", [])}
    out = []
    for text in r.expect:
        metric = text.split(" ", 1)[0]
        if metric in failed:
            got = value_text(r.values.get(metric))
            out.append(f"<span class='bad'>{_e(text)}<br>(got {_e(got)})</span>")
        else:
            out.append(_e(text))
    return "<br>".join(out) or "-"


def _grid_checks(results: tuple[CheckResult, ...]) -> list[CheckResult]:
    """Up to MAX_GRID_CHECKS checks with examples: one per (attack, defense) first (mid-sweep eps)."""
    groups: dict[tuple[Any, ...], list[CheckResult]] = defaultdict(list)
    for r in results:
        if r.detail.get("examples"):
            groups[(r.component, r.detail.get("defense"), r.detail.get("norm"))].append(r)
    picked = [g[len(g) // 2] for g in groups.values()][:MAX_GRID_CHECKS]
    rest = [r for g in groups.values() for r in g if r not in picked]
    return picked + rest[: MAX_GRID_CHECKS - len(picked)]


def _img(png: bytes, alt: str) -> str:
    return f"<div class='fig'><img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'></div>"


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _sweep_figure(results: tuple[CheckResult, ...]) -> bytes | None:
    """Robust accuracy against eps, one line per (attack, norm, goal, defense) with >= 2 eps."""
    groups: dict[tuple[Any, ...], list[tuple[float, float]]] = defaultdict(list)
    for r in results:
        if "eps" in r.detail and r.values.get("robust_accuracy") is not None:
            key = (r.component, r.detail.get("norm"), r.detail.get("goal"), r.detail.get("defense"))
            groups[key].append((float(r.detail["eps"]), float(r.values["robust_accuracy"])))
    lines = {k: sorted(set(v)) for k, v in groups.items() if len({e for e, _ in v}) >= 2}
    if not lines:
        return None
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    for (component, norm, goal, defense), points in sorted(lines.items(), key=str):
        label = f"{component} ({norm}{', ' + goal if goal != 'untargeted' else ''}{', ' + defense if defense else ''})"
        ax.plot([e for e, _ in points], [a for _, a in points], marker="o", label=_label(label))
    ax.set_xlabel("epsilon")
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def _grid_figure(r: CheckResult) -> bytes | None:
    """Two rows of images (clean over adversarial) for image-shaped examples; None otherwise."""
    import numpy as np

    ex = r.detail["examples"]
    shape = tuple(ex["shape"])
    if len(shape) != 3 or shape[0] not in (1, 3):
        return None
    k = len(ex["y"])
    fig = _figure(1.3 * k + 0.4, 3.2)
    axes = fig.subplots(2, k, squeeze=False)
    for i in range(k):
        for row, key in enumerate(("x", "x_adv")):
            img = np.asarray(ex[key][i], dtype=np.float32)
            ax = axes[row][i]
            if shape[0] == 1:
                ax.imshow(img[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(np.clip(img.transpose(1, 2, 0), 0.0, 1.0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"label {ex['y'][i]}", fontsize=9)
            else:
                hit = bool(ex["success"][i])
                pred = ex["adv_pred"][i] if ex.get("adv_pred") else "?"
                ax.set_xlabel(f"pred {pred}", fontsize=9, color="#cf222e" if hit else "#1a7f37")
    axes[0][0].set_ylabel("clean", fontsize=9)
    axes[1][0].set_ylabel("adversarial", fontsize=9)
    return _png(fig)


def _verify_figure(results: list[CheckResult]) -> bytes:
    """Stacked bars: verified / falsified / unknown fraction per verify check."""
    fig = _figure(7, 0.6 * len(results) + 1.4)
    ax = fig.add_subplot()
    names = [plain(r.id) for r in results]  # unique ids: never cut, or two bars would merge
    left = [0.0] * len(results)
    for key, color in (
        ("verified_fraction", "#1a7f37"),
        ("falsified_fraction", "#cf222e"),
        ("unknown_fraction", "#8c959f"),
    ):
        vals = [float(r.values.get(key) or 0.0) for r in results]
        ax.barh(names, vals, left=left, color=color, label=key.replace("_fraction", ""))
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of samples")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


register_format(ReportFormat("html", to_html, (".html", ".htm")))

"""The log-log figure of adversarial error against eps, with each sweep's power-law fit.

Drawn with matplotlib's object API (no pyplot state, the Agg canvas), like the html report's
other figures. Filled markers: points in the fit window; hollow: points left out (saturated, or
a single broken sample); points with zero error cannot sit on a log axis and are not drawn
(the caption of :func:`caption` says how many).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from robustbench_lite.report.power_law import fit_window
from robustbench_lite.report.scaling import Sweep


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def loglog_figure(found: Sequence[Sweep]) -> Any:
    """A matplotlib Figure: conditional adversarial error (success rate on the clean-correct
    samples) against eps on log-log axes, one colour per sweep, with its fitted line."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig = Figure(figsize=(7, 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(found))]
    for s, color in zip(found, colors):
        err = [p.success_rate for p in s.points]
        n = min(p.clean_correct for p in s.points)
        use = fit_window(s.eps, err, n)
        for e, a, u in zip(s.eps, err, use):
            if a is None or not a > 0 or not e > 0:
                continue
            ax.plot([e], [a], "o", color=color, markerfacecolor=color if u else "none")
        label = s.label
        if s.fit is not None:
            f = s.fit
            lo, hi = min(f.eps_used), max(f.eps_used)
            xs = [lo * (hi / lo) ** (i / 20) for i in range(21)]
            ax.plot(xs, [f.prefactor * x**f.exponent for x in xs], "-", color=color)
            label += f": b = {f.exponent:.2f} \u00b1 {f.exponent_se:.2f}"
        ax.plot([], [], "-o", color=color, label=_short(label, 70))
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # plain tick text: the html report turns mathtext off
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("epsilon")
    ax.set_ylabel("adversarial error (clean-correct samples)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def loglog_png(found: Sequence[Sweep]) -> bytes | None:
    """The figure as PNG bytes; None when there is no sweep."""
    if not found:
        return None
    buffer = io.BytesIO()
    loglog_figure(found).savefig(buffer, format="png")
    return buffer.getvalue()


def caption(found: Sequence[Sweep]) -> str:
    """One line under the figure: what the markers mean and what is not drawn."""
    zeros = sum(1 for s in found for p in s.points if not (p.success_rate or 0) > 0)
    return (
        "Filled: points in the fit window (1/N < error <= 0.3); hollow: left out; lines: "
        "least-squares power law in log-log space (Cubuk et al. 2017)."
        + (f" {zeros} points with zero error are not drawn (log axis)." if zeros else "")
    )


def html_section(found: Sequence[Sweep]) -> list[str]:
    """The html report's "Robustness scaling" section: the log-log figure of the sweeps with a
    power-law fit, a table of fits and tilting angles, and the masking flags (names escaped)."""
    import base64
    import html

    from robustbench_lite.report.formats import plain
    from robustbench_lite.report.power_law import fit_text

    def e(value: Any) -> str:
        return html.escape(plain(value))

    if not found:
        return []
    parts = ["<h2>Robustness scaling</h2>"]
    fitted = [s for s in found if s.fit is not None]
    png = loglog_png(fitted)  # the figure only when some sweep has a power-law fit
    if png is not None:
        parts += [
            "<div class='fig'><img alt='adversarial error against eps, log-log' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'></div>",
            f"<p class='meta'>{e(caption(fitted))}</p>",
        ]
    parts += [
        "<div class='scroll'><table><tr><th>sweep</th><th>eps</th><th>power law (conditional)"
        "</th><th>power law (all samples)</th><th>tilt angle (deg)</th><th>masking flags</th></tr>",
    ]
    for s in found:
        tilts = ", ".join(
            f"{p.eps:g}: {p.tilt_angle_deg:.1f}" for p in s.points if p.tilt_angle_deg is not None
        )
        flags = "<br>".join(
            f"<span class='bad'>{e(f.name)}</span> at eps {f.eps:g}" for f in s.flags
        )
        parts.append(
            f"<tr><td>{e(s.label)}</td><td>{e(', '.join(f'{x:g}' for x in s.eps))}</td>"
            f"<td>{e(fit_text(s.fit) if s.fit else s.fit_note)}</td>"
            f"<td>{e(fit_text(s.fit_all) if s.fit_all else '-')}</td>"
            f"<td>{e(tilts or '-')}</td><td>{flags or 'none'}</td></tr>"
        )
    parts.append("</table></div>")
    texts = [f for s in found for f in s.flags]
    if texts:
        parts += [
            "<ul>",
            *(f"<li>{e(f.name)} (eps {f.eps:g}): {e(f.text)}</li>" for f in texts),
            "</ul>",
        ]
    return parts

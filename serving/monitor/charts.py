"""The dashboard's charts, drawn server-side by matplotlib as SVG.

Why matplotlib and SVG: it is already a dependency (the report draws with it), the machine serving the page
needs no JavaScript bundle and no CDN, an SVG is crisp at any size, and the browser shows it as an image
with no script that could fail. Each function takes plain data (from :func:`serving.monitor.dashboard.
dashboard_data`) and returns the SVG text; an empty series gives a chart that says "no data yet".
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from graph import schema as s
from serving.monitor.drift import PSI_MAJOR, PSI_MODERATE

SIZE = (7.0, 3.0)


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _empty(ax: Any, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def lines_chart(title: str, x: Sequence[str], series: Mapping[str, Sequence[float | None]], ylabel: str) -> str:
    """One line per series over the runs ``x`` (short labels)."""
    fig, ax = plt.subplots(figsize=SIZE)
    if not x:
        _empty(ax, title)
        return _svg(fig)
    for name, values in series.items():
        ax.plot(range(len(x)), [float("nan") if v is None else v for v in values], marker="o", label=name)
    ax.set_xticks(range(len(x)), x, rotation=30, ha="right", fontsize=7)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _svg(fig)


def psi_bars(title: str, drifts: Sequence[Mapping[str, Any]], top: int = 15) -> str:
    """Horizontal bars of the ``top`` largest PSIs, with the 0.1 and 0.25 thresholds drawn."""
    fig, ax = plt.subplots(figsize=(SIZE[0], 0.25 * max(min(len(drifts), top), 4) + 1))
    shown = list(drifts)[:top][::-1]
    if not shown:
        _empty(ax, title)
        return _svg(fig)
    colours = [
        "#c0392b" if d["psi"] > PSI_MAJOR else "#e67e22" if d["psi"] > PSI_MODERATE else "#2e86c1" for d in shown
    ]
    ax.barh([d["name"] for d in shown], [d["psi"] for d in shown], color=colours)
    for level in (PSI_MODERATE, PSI_MAJOR):
        ax.axvline(level, color="grey", linestyle="--", linewidth=0.8)
    ax.set_title(title)
    ax.set_xlabel("PSI")
    ax.tick_params(axis="y", labelsize=7)
    return _svg(fig)


def precision_by_week(by_week: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Verdict precision per threat per week."""
    weeks = list(by_week)
    series = {t: [by_week[w].get(t, {}).get("precision") for w in weeks] for t in s.THREATS}
    return lines_chart("Verdict precision per week", weeks, series, "confirmed ÷ reviewed")

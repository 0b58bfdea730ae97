"""Daily charts drawn with matplotlib as inline SVG: axes with units, every value labelled, the
value axis from zero, one line per series (per currency for money)."""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Mapping, Sequence
from types import ModuleType

Point = tuple[dt.date, float]
MAX_LABELLED_POINTS = 14  # beyond this, label the last point of each line only


def line_chart(title: str, unit: str, window: tuple[dt.date, dt.date],
               series: Mapping[str, Sequence[Point]], percent: bool = False) -> str:
    """An SVG line chart of daily series over the `window` of days (first, last); empty series
    draw a 'no data' note. Counts get whole-number ticks."""
    plt = _pyplot()  # first: it chooses the backend
    from matplotlib import dates as mdates
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig, ax = plt.subplots(figsize=(5.2, 2.8), dpi=100)
    try:
        drawn = {name: pts for name, pts in series.items() if pts}
        for name, points in drawn.items():
            days, values = [p[0] for p in points], [p[1] for p in points]
            ax.plot(days, values, marker="o", markersize=3, linewidth=1.6, label=name)
            shown = points if len(points) <= MAX_LABELLED_POINTS else points[-1:]
            for day, value in shown:
                ax.annotate(_format(value, percent), (day, value), textcoords="offset points",
                            xytext=(0, 5), ha="center", fontsize=7)
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel(unit, fontsize=8)
        ax.set_ylim(bottom=0, top=_top(drawn))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _format(v, percent)))
        half_day = dt.timedelta(hours=12)  # the first and last points stay inside the frame
        ax.set_xlim(dt.datetime.combine(window[0], dt.time()) - half_day,
                    dt.datetime.combine(window[1], dt.time()) + half_day)
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=8))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
        if not percent:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        if len(drawn) > 1:
            ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        svg = io.StringIO()
        fig.savefig(svg, format="svg")
        return svg.getvalue().split("<svg", 1)[1].join(("<svg", ""))  # drop the XML prologue
    finally:
        plt.close(fig)


@functools.cache
def _pyplot() -> ModuleType:
    """pyplot, set up on first use: a process that draws no chart (the code server, a run of
    the loads alone) does not import matplotlib (0.6 s)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; before pyplot is imported
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    from matplotlib import pyplot

    return pyplot


def _top(series: Mapping[str, Sequence[Point]]) -> float:
    highest = max((v for pts in series.values() for _, v in pts), default=0.0)
    return highest * 1.15 if highest > 0 else 1.0  # room for the labels; a flat zero still shows


def _format(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.0%}" if value in (0, 1) else f"{value:.1%}"
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}"

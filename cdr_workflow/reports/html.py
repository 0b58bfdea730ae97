"""Self-contained HTML reports (inline CSS and SVG charts: no CDN, open offline)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from html import escape

from cdr_workflow.billing import InvoiceLine
from cdr_workflow.kinds import KINDS, Kind
from cdr_workflow.kpis import Kpi
from cdr_workflow.signals import Signal
from cdr_workflow.warehouse import Warehouse, as_date

STYLE = """body{font:14px system-ui,sans-serif;margin:2rem;color:#1f2430;max-width:1100px}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1rem}
figure{margin:0}figcaption{font-weight:600;margin-bottom:.25rem}"""

SeriesPoint = tuple[dt.date, float]


def chart(title: str, points: Sequence[SeriesPoint], width: int = 320, height: int = 120) -> str:
    """A line chart of a daily series as inline SVG."""
    if not points:
        return f"<figure><figcaption>{escape(title)}</figcaption><p>no data</p></figure>"
    values = [v for _, v in points]
    low, high = min(values), max(values)
    step = (width - 20) / max(len(points) - 1, 1)

    def y(value: float) -> float:  # a flat series runs through the middle
        share = (value - low) / (high - low) if high > low else 0.5
        return height - 20 - share * (height - 40)

    coords = " ".join(f"{10 + i * step:.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
    first, last = points[0][0].isoformat(), points[-1][0].isoformat()
    return (f'<figure><figcaption>{escape(title)}</figcaption>'
            f'<svg width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
            f'<polyline fill="none" stroke="#3b5bdb" stroke-width="2" points="{coords}"/>'
            f'<text x="10" y="{height - 4}" font-size="10">{first}</text>'
            f'<text x="{width - 70}" y="{height - 4}" font-size="10">{last}</text>'
            f'<text x="10" y="12" font-size="10">max {high:g}</text></svg></figure>')


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape('' if c is None else str(c))}</td>"
                                     for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, sections: Sequence[str]) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1>{''.join(sections)}</body></html>")


def daily_html(kind: str, day: dt.date, series: dict[str, Sequence[SeriesPoint]],
               kpis: Sequence[Kpi], signals: Sequence[Signal]) -> str:
    flagged = [s for s in signals if s.flag]
    sections = [
        "<h2>Last 30 days</h2><div class='charts'>"
        + "".join(chart(name, points) for name, points in series.items()) + "</div>",
        "<h2>Flags</h2>" + (table(["dimension", "value", "flag", "volume", "trailing median",
                                   "success", "norm"],
                                  [(s.dimension, s.value, s.flag, s.volume, s.trailing_median,
                                    f"{s.success_rate:.1%}",
                                    "" if s.norm_success_rate is None
                                    else f"{s.norm_success_rate:.1%}") for s in flagged])
                            if flagged else "<p>No flags.</p>"),
        "<h2>KPIs</h2>" + table(["dimension", "value", "measure", "figure"],
                                [(k.dimension, k.value, k.measure, k.figure) for k in kpis]),
    ]
    return page(f"{kind.capitalize()} CDRs, {day.isoformat()}", sections)


def monthly_html(month: dt.date, month_to_date: bool,
                 lines: Sequence[InvoiceLine],
                 series: dict[str, Sequence[SeriesPoint]]) -> str:
    status = "month to date" if month_to_date else "closed month"
    return page(f"Invoice lines, {month:%Y-%m} ({status})", [
        "<h2>Day by day</h2><div class='charts'>"
        + "".join(chart(name, points) for name, points in series.items()) + "</div>",
        "<h2>Invoice lines</h2>" + table(
            ["kind", "currency", "application key", "method / call type", "items", "amount"],
            [(x.kind, x.currency, x.application_key, x.product, x.items, x.amount)
             for x in lines])])


REPORT_DAYS = 30


def daily_series(warehouse: Warehouse, kind: Kind, day: dt.date) -> dict[str, list[SeriesPoint]]:
    """Daily figures over the last 30 days, for the report's charts."""
    first = day - dt.timedelta(days=REPORT_DAYS - 1)
    amount = "SUM(t.amount)" if kind.has_amounts else "NULL"
    rows = warehouse.query(
        f"SELECT t.cdr_date, COUNT(*), {amount}, "
        f"SUM(CASE WHEN t.result = '{kind.success_result}' THEN 1 ELSE 0 END) "
        f"FROM {kind.table} t WHERE t.cdr_date BETWEEN ? AND ? GROUP BY 1 ORDER BY 1",
        (first, day))
    files = dict(warehouse.query(
        "SELECT cdr_date, SUM(rows_rejected) * 1.0 / NULLIF(SUM(rows_read), 0) FROM cdr_files "
        "WHERE kind = ? AND cdr_date BETWEEN ? AND ? GROUP BY 1", (kind.name, first, day)))
    flags = dict(warehouse.query(
        "SELECT cdr_date, COUNT(flag) FROM cdr_signals_daily WHERE kind = ? AND cdr_date "
        "BETWEEN ? AND ? GROUP BY 1", (kind.name, first, day)))
    return {
        "volume": [(as_date(d), float(n)) for d, n, _, _ in rows],
        "cost (all currencies)": [(as_date(d), float(Decimal(str(c or 0))))
                                  for d, _, c, _ in rows],
        "reject ratio": [(as_date(d), float(r or 0)) for d, r in sorted(files.items())],
        kind.rate_name: [(as_date(d), s / n if n else 0.0) for d, n, _, s in rows],
        "flags": [(as_date(d), float(n)) for d, n in sorted(flags.items())],
    }


def month_series(warehouse: Warehouse, first: dt.date, last: dt.date
                 ) -> dict[str, list[SeriesPoint]]:
    """Per kind, the daily items and amount (all currencies) of the month, for its charts."""
    series: dict[str, list[SeriesPoint]] = {}
    for kind in KINDS.values():
        amount = "SUM(amount)" if kind.has_amounts else "NULL"
        rows = warehouse.query(f"SELECT cdr_date, COUNT(*), {amount} FROM {kind.table} "
                               "WHERE cdr_date BETWEEN ? AND ? GROUP BY 1 ORDER BY 1",
                               (first, last))
        series[f"{kind.name} items"] = [(as_date(d), float(n)) for d, n, _ in rows]
        series[f"{kind.name} amount"] = [(as_date(d), float(Decimal(str(a or 0))))
                                         for d, _, a in rows]
    return series

"""Self-contained HTML reports (inline CSS and SVG charts: no CDN, open offline), and the
daily figures they are drawn from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from html import escape

from cdr_workflow.billing import InvoiceLine
from cdr_workflow.kinds import KINDS, Kind
from cdr_workflow.kpis import Kpi
from cdr_workflow.reports.charts import Point, line_chart
from cdr_workflow.signals import Signal
from cdr_workflow.warehouse import Warehouse, as_date

REPORT_DAYS = 30
STYLE = """body{font:14px system-ui,sans-serif;margin:2rem;color:#1f2430;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1rem}
figure{margin:0}svg{max-width:100%;height:auto}"""


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape('' if c is None else str(c))}</td>"
                                     for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, sections: Sequence[str]) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1>{''.join(sections)}</body></html>")


def kpi_grid(kpis: Sequence[Kpi]) -> tuple[list[str], list[list[object]]]:
    """Dimension value rows × measure columns (measures in the order first met)."""
    measures = list(dict.fromkeys(k.measure for k in kpis))
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for k in kpis:
        rows.setdefault((k.dimension, k.value), {})[k.measure] = k.figure
    return (["dimension", "value", *measures],
            [[dim, value, *(cells.get(m, "") for m in measures)]
             for (dim, value), cells in rows.items()])


def kpi_markdown(kpis: Sequence[Kpi]) -> str:
    headers, rows = kpi_grid(kpis)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def daily_html(kind: Kind, day: dt.date, charts: Sequence[str], kpis: Sequence[Kpi],
               signals: Sequence[Signal]) -> str:
    flagged = [s for s in signals if s.flag]
    headers, rows = kpi_grid(kpis)
    return page(f"{kind.name.capitalize()} CDRs, {day.isoformat()}", [
        f"<h2>Last {REPORT_DAYS} days</h2><div class='charts'>"
        + "".join(f"<figure>{c}</figure>" for c in charts) + "</div>",
        "<h2>Flags</h2>" + (table(["dimension", "value", "flag", "volume", "trailing median",
                                   "success", "norm"],
                                  [(s.dimension, s.value, s.flag, s.volume, s.trailing_median,
                                    f"{s.success_rate:.1%}",
                                    "" if s.norm_success_rate is None
                                    else f"{s.norm_success_rate:.1%}") for s in flagged])
                            if flagged else "<p>No flags.</p>"),
        "<h2>KPIs</h2>" + table(headers, rows),
    ])


def daily_charts(warehouse: Warehouse, kind: Kind, day: dt.date) -> list[str]:
    """The report's charts over the last 30 days: volume, cost per currency, reject ratio,
    success rate and flags."""
    first = day - dt.timedelta(days=REPORT_DAYS - 1)
    rows = warehouse.query(
        f"SELECT cdr_date, COUNT(*), SUM(CASE WHEN result = '{kind.success_result}' THEN 1 "
        f"ELSE 0 END) FROM {kind.table} WHERE cdr_date BETWEEN ? AND ? GROUP BY 1 ORDER BY 1",
        (first, day))
    rejects = warehouse.query(
        "SELECT cdr_date, SUM(rows_rejected) * 1.0 / NULLIF(SUM(rows_read), 0) FROM cdr_files "
        "WHERE kind = ? AND cdr_date BETWEEN ? AND ? GROUP BY 1 ORDER BY 1",
        (kind.name, first, day))
    flags = warehouse.query(
        "SELECT cdr_date, COUNT(flag) FROM cdr_signals_daily WHERE kind = ? AND cdr_date "
        "BETWEEN ? AND ? GROUP BY 1 ORDER BY 1", (kind.name, first, day))
    event, window = f"{kind.event_word}s", (first, day)
    charts = [line_chart("Volume", event, window,
                         {event: [(as_date(d), float(n)) for d, n, _ in rows]})]
    if kind.has_amounts:
        charts.append(line_chart("Cost per day, by currency", "amount in its currency", window,
                                 _per_currency(warehouse, kind, first, day)))
    charts += [
        line_chart(f"Success ({kind.rate_name.upper()})", "share of " + event, window, {
            kind.rate_name: [(as_date(d), s / n if n else 0.0) for d, n, s in rows]},
            percent=True),
        line_chart("Reject ratio", "share of lines", window, {
            "rejected": [(as_date(d), float(r or 0)) for d, r in rejects]}, percent=True),
        line_chart("Fraud flags", "flags", window,
                   {"flags": [(as_date(d), float(n)) for d, n in flags]}),
    ]
    return charts


def _per_currency(warehouse: Warehouse, kind: Kind, first: dt.date, last: dt.date
                  ) -> dict[str, list[Point]]:
    series: dict[str, list[Point]] = {}
    for d, currency, amount in warehouse.query(
            f"SELECT cdr_date, currency, SUM(amount) FROM {kind.table} WHERE cdr_date BETWEEN ? "
            "AND ? AND amount IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2", (first, last)):
        series.setdefault(currency or "no currency", []).append(
            (as_date(d), float(Decimal(str(amount)))))
    return series


def monthly_html(month: dt.date, month_to_date: bool, lines: Sequence[InvoiceLine],
                 charts: Sequence[str]) -> str:
    status = "month to date" if month_to_date else "closed month"
    return page(f"Invoice lines, {month:%Y-%m} ({status})", [
        "<h2>Day by day</h2><div class='charts'>"
        + "".join(f"<figure>{c}</figure>" for c in charts) + "</div>",
        "<h2>Invoice lines</h2>" + table(
            ["kind", "currency", "application key", "method / call type", "items", "amount"],
            [(x.kind, x.currency, x.application_key, x.product, x.items, x.amount)
             for x in lines])])


def month_charts(warehouse: Warehouse, first: dt.date, last: dt.date) -> list[str]:
    """Per kind, the month's daily items, and its daily amount per currency."""
    charts = []
    for kind in KINDS.values():
        rows = warehouse.query(f"SELECT cdr_date, COUNT(*) FROM {kind.table} WHERE cdr_date "
                               "BETWEEN ? AND ? GROUP BY 1 ORDER BY 1", (first, last))
        charts.append(line_chart(f"{kind.name} items per day", f"{kind.event_word}s",
                                 (first, last),
                                 {"items": [(as_date(d), float(n)) for d, n in rows]}))
        if kind.has_amounts:
            charts.append(line_chart(f"{kind.name} amount per day, by currency",
                                     "amount in its currency", (first, last),
                                     _per_currency(warehouse, kind, first, last)))
    return charts

"""What the CDRs say beyond "nothing was lost": the customer's own records matched against
them, telecom KPIs, monthly invoice lines and fraud signals.

Each part is a query against the warehouse (plain SQL both engines run) and pure logic over its
rows, so the logic is tested on hand-made figures without Dagster.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cdr_workflow.layouts import id_column, table_name

SUCCESS = {"verification": "SUCCESSFUL", "voice": "ANSWERED"}
# dimensions KPIs are broken down by: (name, SQL expression)
KPI_DIMENSIONS = {
    "verification": (("all", "'all'"), ("country", "country"), ("method", "method"),
                     ("application_key", "application_key")),
    "voice": (("all", "'all'"), ("call_type", "call_type"), ("country", "to_country_id"),
              ("application_key", "application_key")),
}
SIGNAL_DIMENSIONS = {
    "verification": (("country", "country"),),
    "voice": (("country", "to_country_id"), ("prefix", "SUBSTR(to_endpoint, 1, 4)")),
}
PRODUCT_COLUMN = {"verification": "method", "voice": "call_type"}
TRAILING_DAYS = 7
SPIKE_FACTOR = 3.0  # volume this many times its trailing median...
COLLAPSE_FACTOR = 0.5  # ...with success below this share of its norm is a flag
MIN_SIGNAL_VOLUME = 20  # too few events to call anything
ANOMALY_BAND = 0.5  # the day's total volume beyond ±50% of its trailing median warns


def _number(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


# ---------------------------------------------------------------- KPIs


@dataclass(frozen=True)
class Kpi:
    dimension: str
    value: str
    measure: str
    figure: Decimal


def kpi_queries(kind: str) -> dict[str, str]:
    """Per dimension: counts and durations by dimension value, and cost by value × currency."""
    table = table_name(kind)
    success = f"SUM(CASE WHEN result = '{SUCCESS[kind]}' THEN 1 ELSE 0 END)"
    counts = f"COUNT(*), {success}"
    if kind == "voice":
        counts += (", SUM(CASE WHEN result IN ('ANSWERED', 'BUSY', 'NOANSWER') THEN 1 ELSE 0 END)"
                   ", SUM(CASE WHEN result = 'ANSWERED' THEN duration ELSE 0 END)")
    queries = {}
    for name, expr in KPI_DIMENSIONS[kind]:
        queries[f"{name}:counts"] = (f"SELECT COALESCE(CAST({expr} AS VARCHAR), 'unknown'), "
                                     f"{counts} FROM {table} WHERE cdr_date = ? GROUP BY 1")
        queries[f"{name}:cost"] = (f"SELECT COALESCE(CAST({expr} AS VARCHAR), 'unknown'), "
                                   f"currency, SUM(amount) FROM {table} WHERE cdr_date = ? "
                                   "AND amount IS NOT NULL GROUP BY 1, 2")
    return queries


def kpis(kind: str, results: dict[str, list[tuple]]) -> list[Kpi]:
    """ASR, ACD, NER, minutes, cost and cost per minute (voice); conversion and cost per
    success (verification), from the rows of `kpi_queries`."""
    out: list[Kpi] = []
    for name, _ in KPI_DIMENSIONS[kind]:
        per_value: dict[str, dict[str, Decimal]] = {}
        for value, total, successes, *voice in results[f"{name}:counts"]:
            total, successes = _number(total), _number(successes)
            figures = {("attempts" if kind == "voice" else "requests"): total,
                       ("answered" if kind == "voice" else "successes"): successes}
            if kind == "voice":
                reached, answered_seconds = (_number(v) for v in voice)
                figures["asr"] = _ratio(successes, total)
                figures["ner"] = _ratio(reached, total)
                figures["acd_seconds"] = _ratio(answered_seconds, successes)
                figures["minutes"] = (answered_seconds / 60).quantize(Decimal("0.000001"))
            else:
                figures["conversion"] = _ratio(successes, total)
            per_value[value] = figures
        for value, currency, cost in results[f"{name}:cost"]:
            figures = per_value.setdefault(value, {})
            figures[f"cost_{currency}"] = _number(cost)
            base = figures.get("minutes") if kind == "voice" else figures.get("successes")
            per = "cost_per_minute" if kind == "voice" else "cost_per_success"
            figures[f"{per}_{currency}"] = _ratio(_number(cost), base or Decimal(0))
        out += [Kpi(name, value, measure, figure) for value, figures in sorted(per_value.items())
                for measure, figure in figures.items() if figure is not None]
    return out


def _ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part / whole).quantize(Decimal("0.000001")) if whole else None


# ---------------------------------------------------------------- signals


@dataclass(frozen=True)
class Signal:
    dimension: str
    value: str
    volume: int
    trailing_median: float
    success_rate: float
    norm_success_rate: float | None
    flag: str | None


def signal_query(kind: str, dimension_expr: str) -> str:
    """Volume and successes per day and dimension value over a window of days."""
    return (f"SELECT cdr_date, COALESCE(CAST({dimension_expr} AS VARCHAR), 'unknown'), "
            f"COUNT(*), SUM(CASE WHEN result = '{SUCCESS[kind]}' THEN 1 ELSE 0 END) "
            f"FROM {table_name(kind)} WHERE cdr_date BETWEEN ? AND ? GROUP BY 1, 2")


def signals(kind: str, dimension: str, day: dt.date, rows: Iterable[tuple],
            loaded_days: set[dt.date]) -> list[Signal]:
    """Flag values whose volume spikes while their success collapses: SMS / flash-call pumping
    for verification, IRSF-like traffic for voice. Days not loaded do not count as zero."""
    by_day: dict[dt.date, dict[str, tuple[int, int]]] = {}
    for cdr_date, value, volume, successes in rows:
        by_day.setdefault(as_date(cdr_date), {})[value] = (int(volume), int(successes or 0))
    history = [d for d in sorted(loaded_days) if day - dt.timedelta(TRAILING_DAYS) <= d < day]
    flag_name = "pumping" if kind == "verification" else "irsf_suspect"
    out = []
    for value, (volume, successes) in sorted(by_day.get(day, {}).items()):
        past = [by_day.get(d, {}).get(value, (0, 0)) for d in history]
        median = statistics.median(v for v, _ in past) if past else 0.0
        past_volume = sum(v for v, _ in past)
        norm = sum(s for _, s in past) / past_volume if past_volume else None
        rate = successes / volume if volume else 0.0
        spike = volume >= MIN_SIGNAL_VOLUME and volume >= SPIKE_FACTOR * max(median, 1)
        collapse = norm is not None and rate < COLLAPSE_FACTOR * norm
        out.append(Signal(dimension, value, volume, float(median), rate, norm,
                          flag_name if spike and collapse and history else None))
    return out


def volume_anomaly(day: dt.date, totals: dict[dt.date, int]) -> tuple[bool, str]:
    """(ok, detail): the day's volume within ±50% of the trailing 7-day median."""
    past = [totals[d] for d in sorted(totals) if day - dt.timedelta(TRAILING_DAYS) <= d < day]
    today = totals.get(day, 0)
    if not past:
        return True, f"{today} events; no earlier days to compare with"
    median = statistics.median(past)
    change = (today - median) / median if median else 0.0
    return abs(change) <= ANOMALY_BAND, (
        f"{today} events vs trailing median {median:g} ({change:+.0%})")


def as_date(value: Any) -> dt.date:
    """A date as the warehouse returns it (a date, or its ISO text)."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


# ---------------------------------------------------------------- billing


def billing_query(kind: str) -> str:
    """Invoice lines of a month: items and exact amount per currency × key × product."""
    return (f"SELECT currency, application_key, {PRODUCT_COLUMN[kind]}, COUNT(*), "
            f"SUM(amount) FROM {table_name(kind)} WHERE cdr_date BETWEEN ? AND ? "
            f"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")


def month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    first = month.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


# ---------------------------------------------------------------- your own records

STATUSES = ("matched", "matched_late", "amount_mismatch", "time_skew", "missing_in_cdrs",
            "unexpected_in_cdrs")


@dataclass(frozen=True)
class Tolerances:
    amount: Decimal = Decimal(0)
    seconds: float = 300.0


@dataclass(frozen=True)
class Match:
    id: str
    status: str
    detail: str
    cdr_date: dt.date | None  # where the CDR was loaded, if anywhere


def expected_query(kind: str) -> str:
    """The customer's records for a day, each with its CDR wherever (whichever day) it landed."""
    table, key = table_name(kind), id_column(kind)
    event = "start_timestamp" if kind == "verification" else "call_time"
    return (f"SELECT e.id, e.expected_time, e.amount, c.cdr_date, c.{event}, c.amount "
            f"FROM cdr_expected e LEFT JOIN {table} c ON c.{key} = e.id "
            "WHERE e.kind = ? AND e.cdr_date = ?")


def unexpected_query(kind: str) -> str:
    table, key = table_name(kind), id_column(kind)
    return (f"SELECT c.{key}, c.source_file, c.source_line FROM {table} c WHERE c.cdr_date = ? "
            f"AND NOT EXISTS (SELECT 1 FROM cdr_expected e WHERE e.kind = ? AND e.id = c.{key})")


def classify(day: dt.date, expected_rows: Iterable[tuple], unexpected_rows: Iterable[tuple],
             tolerances: Tolerances) -> list[Match]:
    out = []
    for record_id, expected_time, expected_amount, cdr_date, cdr_time, cdr_amount in \
            expected_rows:
        out.append(_classify_one(day, record_id, expected_time, expected_amount, cdr_date,
                                 cdr_time, cdr_amount, tolerances))
    out += [Match(record_id, "unexpected_in_cdrs",
                  f"billed in {source_file} line {line}, never asked for", day)
            for record_id, source_file, line in unexpected_rows]
    return out


def _classify_one(day: dt.date, record_id: str, expected_time: Any, expected_amount: Any,
                  cdr_date: Any, cdr_time: Any, cdr_amount: Any,
                  tolerances: Tolerances) -> Match:
    if cdr_date is None:
        return Match(record_id, "missing_in_cdrs", "asked for, no CDR in any loaded day", None)
    loaded = as_date(cdr_date)
    if expected_amount is not None and cdr_amount is not None:
        difference = abs(_number(cdr_amount) - _number(expected_amount))
        if difference > tolerances.amount:
            return Match(record_id, "amount_mismatch", f"CDR {_number(cdr_amount)} vs expected "
                         f"{_number(expected_amount)} (off by {difference})", loaded)
    if expected_time is not None and cdr_time is not None:
        skew = abs((_utc(cdr_time) - _utc(expected_time)).total_seconds())
        if skew > tolerances.seconds:
            return Match(record_id, "time_skew", f"CDR time {skew:.0f} s from expected", loaded)
    if loaded > day:
        return Match(record_id, "matched_late", f"arrived in the file of {loaded}", loaded)
    return Match(record_id, "matched", "", loaded)


def _utc(value: Any) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

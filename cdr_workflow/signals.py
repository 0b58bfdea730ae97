"""Fraud and anomaly signals: a value whose volume spikes while its success collapses (SMS /
flash-call pumping for verification, IRSF-like traffic for voice), and a day whose total
volume leaves its trailing median's band."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from cdr_workflow.checks import CheckOutcome
from cdr_workflow.kinds import Dimension, Kind
from cdr_workflow.numbering import HIGH_COST_TYPES, PREFIX_CHARS, destination
from cdr_workflow.warehouse import Warehouse, as_date
from cdr_workflow.warehouse.tables import SIGNALS

TRAILING_DAYS = 7
SPIKE_FACTOR = 3.0  # volume this many times its trailing median...
COLLAPSE_FACTOR = 0.5  # ...with success below this share of its norm is a flag
MIN_SIGNAL_VOLUME = 20  # too few events to call anything
ANOMALY_BAND = 0.5  # the day's total volume beyond ±50% of its trailing median warns


@dataclass(frozen=True)
class Signal:
    dimension: str
    value: str
    volume: int
    trailing_median: float
    success_rate: float
    norm_success_rate: float | None
    flag: str | None


@dataclass(frozen=True)
class DaySignals:
    signals: list[Signal]
    volume_ok: bool
    volume_detail: str

    @property
    def flagged(self) -> list[Signal]:
        return [s for s in self.signals if s.flag]


def signal_query(kind: Kind, dimension: Dimension) -> str:
    """Volume and successes per day and dimension value over a window of days; by number
    range (with an example number of it) when the value comes from the numbering plan."""
    success = f"SUM(CASE WHEN result = '{kind.success_result}' THEN 1 ELSE 0 END)"
    if dimension.by_destination:
        return (f"SELECT cdr_date, SUBSTR({dimension.sql}, 1, {PREFIX_CHARS}), "
                f"MIN({dimension.sql}), COUNT(*), {success} FROM {kind.table} "
                "WHERE cdr_date BETWEEN ? AND ? GROUP BY 1, 2")
    return (f"SELECT cdr_date, COALESCE(CAST({dimension.sql} AS VARCHAR), 'unknown'), "
            f"COUNT(*), {success} FROM {kind.table} WHERE cdr_date BETWEEN ? AND ? "
            "GROUP BY 1, 2")


def by_destination(rows: list[tuple], *fields: str) -> dict[str, list[tuple]]:
    """Rows per number range → per destination property (summed), for each of `fields`, in
    one pass."""
    totals: dict[str, dict[tuple, list[int]]] = {f: {} for f in fields}
    for cdr_date, _, example, volume, successes in rows:
        where = destination(example)
        for f in fields:
            figures = totals[f].setdefault((cdr_date, getattr(where, f)), [0, 0])
            figures[0] += volume
            figures[1] += successes or 0
    return {f: [(d, v, n, s) for (d, v), (n, s) in by_value.items()]
            for f, by_value in totals.items()}


def signals(kind: Kind, dimension: str, day: dt.date, rows: Iterable[tuple],
            loaded_days: set[dt.date]) -> list[Signal]:
    """Flag values whose volume spikes while their success collapses. Days not loaded do not
    count as zero."""
    by_day: dict[dt.date, dict[str, tuple[int, int]]] = {}
    for cdr_date, value, volume, successes in rows:
        by_day.setdefault(as_date(cdr_date), {})[value] = (int(volume), int(successes or 0))
    history = [d for d in sorted(loaded_days) if day - dt.timedelta(TRAILING_DAYS) <= d < day]
    out = []
    for value, (volume, successes) in sorted(by_day.get(day, {}).items()):
        past = [by_day.get(d, {}).get(value, (0, 0)) for d in history]
        median = statistics.median(v for v, _ in past) if past else 0.0
        past_volume = sum(v for v, _ in past)
        norm = sum(s for _, s in past) / past_volume if past_volume else None
        rate = successes / volume if volume else 0.0
        spike = volume >= MIN_SIGNAL_VOLUME and volume >= SPIKE_FACTOR * max(median, 1)
        collapse = norm is not None and rate < COLLAPSE_FACTOR * norm
        # revenue-share fraud answers its calls: to high-cost ranges a spike alone is enough
        high_cost = value in HIGH_COST_TYPES
        out.append(Signal(dimension, value, volume, float(median), rate, norm,
                          kind.flag_name if spike and history and (collapse or high_cost)
                          else None))
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


def loaded_days(warehouse: Warehouse, kind: Kind, first: dt.date, last: dt.date
                ) -> set[dt.date]:
    return {as_date(d) for (d,) in warehouse.query(
        "SELECT DISTINCT cdr_date FROM cdr_files WHERE kind = ? AND cdr_date BETWEEN ? AND ?",
        (kind.name, first, last))}


def compute_day_signals(warehouse: Warehouse, kind: Kind, day: dt.date) -> DaySignals:
    """Compute a day's signals, replace them in `cdr_signals_daily`, judge its volume."""
    first = day - dt.timedelta(days=TRAILING_DAYS)
    loaded = loaded_days(warehouse, kind, first, day)
    # today from the CDRs; the days before from their stored signals, so a day's cost does
    # not grow with the window (every value a day had is stored with its volume)
    today: dict[str, list[tuple]] = {}
    for dim in kind.signal_dimensions:
        if not dim.by_destination:
            today[dim.name] = warehouse.query(signal_query(kind, dim), (day, day))
    numbered = [d for d in kind.signal_dimensions if d.by_destination]
    if numbered:  # one query and one pass for every property of the destination
        per_field = by_destination(warehouse.query(signal_query(kind, numbered[0]), (day, day)),
                                   *(d.by_destination for d in numbered))
        today |= {d.name: per_field[d.by_destination] for d in numbered}
    # the trailing days that have stored signals: a day without them is not history of zeros
    with_signals = {as_date(d) for (d,) in warehouse.query(
        "SELECT DISTINCT cdr_date FROM cdr_signals_daily WHERE kind = ? AND cdr_date >= ? "
        "AND cdr_date < ?", (kind.name, first, day))}
    found = [s for dim in kind.signal_dimensions for s in signals(
        kind, dim.name, day, _history(warehouse, kind, dim.name, first, day) + today[dim.name],
        (loaded & with_signals) | {day})]
    warehouse.replace_rows(SIGNALS, {"kind": kind.name, "cdr_date": day}, SIGNALS.rows(
        [{"dimension": s.dimension, "dimension_value": s.value, "volume": s.volume,
          "trailing_median": s.trailing_median, "success_rate": s.success_rate,
          "norm_success_rate": s.norm_success_rate, "flag": s.flag} for s in found],
        {"kind": kind.name, "cdr_date": day}))
    totals = {as_date(d): int(n) for d, n in warehouse.query(
        f"SELECT cdr_date, COUNT(*) FROM {kind.table} WHERE cdr_date BETWEEN ? AND ? "
        "GROUP BY 1", (first, day))}
    totals = {d: totals.get(d, 0) for d in loaded | {day}}  # a loaded day with no rows is 0
    return DaySignals(found, *volume_anomaly(day, totals))


def _history(warehouse: Warehouse, kind: Kind, dimension: str, first: dt.date, day: dt.date
             ) -> list[tuple]:
    """(day, value, volume, successes) of the days before, from `cdr_signals_daily`."""
    return [(d, v, int(n), round(float(rate) * int(n))) for d, v, n, rate in warehouse.query(
        "SELECT cdr_date, dimension_value, volume, success_rate FROM cdr_signals_daily "
        "WHERE kind = ? AND dimension = ? AND cdr_date >= ? AND cdr_date < ?",
        (kind.name, dimension, first, day))]


def signal_checks(day_signals: DaySignals) -> list[CheckOutcome]:
    flagged = day_signals.flagged
    return [
        CheckOutcome("volume_anomaly", day_signals.volume_ok, day_signals.volume_detail,
                     {"volume": sum(s.volume for s in day_signals.signals
                                    if s.dimension == day_signals.signals[0].dimension)
                      if day_signals.signals else 0}),
        CheckOutcome("no_fraud_flags", not flagged, ", ".join(
            f"{s.dimension} {s.value}: {s.flag}" for s in flagged) or "none",
            {"flags": len(flagged)}),
    ]

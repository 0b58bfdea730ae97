"""The reconciliation's side of the warehouse: the raw figures of one kind and day read
back, and the finished report's figures stored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from cdr_workflow.kinds import Kind
from cdr_workflow.warehouse import Warehouse, among_days, as_date, other_days
from cdr_workflow.warehouse.day_load import (
    DUPLICATE_OTHER_DAY,
    AmountKey,
    FileLoad,
    decode_amounts,
    decode_drift,
)
from cdr_workflow.warehouse.tables import RECONCILIATION

if TYPE_CHECKING:
    from cdr_workflow.reconcile import DailyReport

# a day this big has its ids counted on a connection of its own, beside its other reads
# (PostgreSQL, 1M rows: the count 0.54 s, the other reads 0.72 s; a connection opens in
# 50-150 ms, as ADBC reads the server's types)
BESIDE_ROWS = 250_000
FILE_COLUMNS = ("kind", "cdr_date", "source_file", "source_uri", "size_bytes", "fingerprint",
                "rows_read", "rows_loaded", "rows_rejected", "amount_totals", "schema_drift")


@dataclass(frozen=True)
class DayFacts:
    kind: Kind
    cdr_date: dt.date
    files: list[FileLoad]
    reject_reasons: dict[str, int]
    warehouse_amounts: dict[AmountKey, Decimal]
    outcome_mix: dict[tuple[str | None, str | None], int]
    late_before: int
    late_after: int
    duplicates_of_other_days: int
    missing_days_before: list[dt.date]
    duplicate_ids_in_table: int

    @property
    def file_amounts(self) -> dict[AmountKey, Decimal]:
        totals: dict[AmountKey, Decimal] = {}
        for f in self.files:
            for key, value in f.amount_totals.items():
                totals[key] = totals.get(key, Decimal(0)) + value
        return totals


def read_day_facts(warehouse: Warehouse, kind: Kind, day: dt.date, start: dt.date) -> DayFacts:
    with warehouse.connect() as con, ThreadPoolExecutor(1) as pool:
        def run(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
            return warehouse.execute(con, sql, params)

        table, key = kind.table, kind.id_column
        files = [_file_load(row) for row in run(
            f"SELECT {', '.join(FILE_COLUMNS)} FROM cdr_files WHERE kind = ? AND cdr_date = ? "
            "ORDER BY source_file", (kind.name, day))]
        within = _ids_twice_within_later(warehouse, con, pool, table, key, day,
                                         rows=sum(f.rows_loaded for f in files))
        reasons: dict[str, int] = {}
        for text, count in run("SELECT reasons, COUNT(*) FROM cdr_rejects WHERE kind = ? AND "
                               "cdr_date = ? GROUP BY reasons", (kind.name, day)):
            for reason in text.split("; "):
                rule = reason.split(":")[0]
                reasons[rule] = reasons.get(rule, 0) + count
        amounts, mix, (before, after) = _day_totals(run, kind, day)
        loaded_days = {r[0] for r in run(
            "SELECT DISTINCT cdr_date FROM cdr_files WHERE kind = ? AND cdr_date >= ? "
            "AND cdr_date < ?", (kind.name, start, day))}
        missing = [start + dt.timedelta(days=i) for i in range((day - start).days)
                   if start + dt.timedelta(days=i) not in loaded_days]
        # ids of the day present twice: within the day, or also on another day (the same
        # query shapes as the load's own duplicate search, which stay within DuckDB's limit)
        across, days = 0, warehouse.days_sharing_ids(con, table, key, day, verify=True)
        if days != []:  # on DuckDB: the days holding one of the day's id hashes
            on_days, params = among_days("o.cdr_date", days)
            elsewhere, other = other_days("o.cdr_date", day)
            (across,), = run(f"SELECT COUNT(DISTINCT n.{key}) FROM {table} n JOIN {table} o "
                             f"ON o.{key} = n.{key} AND {elsewhere}{on_days} "
                             "WHERE n.cdr_date = ?", (*other, *params, day))
        duplicates = within() + across
    return DayFacts(
        kind=kind, cdr_date=day, files=files, reject_reasons=reasons,
        warehouse_amounts=amounts, outcome_mix=mix, late_before=before, late_after=after,
        duplicates_of_other_days=reasons.get(DUPLICATE_OTHER_DAY, 0),
        missing_days_before=missing, duplicate_ids_in_table=duplicates)


def _day_totals(run: Callable[..., list[tuple]], kind: Kind, day: dt.date
                ) -> tuple[dict[AmountKey, Decimal], dict[tuple[str | None, str | None], int],
                           tuple[int, int]]:
    """The day's money per currency × application key, its outcome mix and its records
    timed before and after the UTC day, in one read of the day (PostgreSQL, 1M rows: 0.21 s
    against 0.55 s in three)."""
    table, event = kind.table, kind.event_time_column
    money = "currency, application_key, SUM(amount)" if kind.has_amounts else "NULL, NULL, NULL"
    # the UTC day's bounds, compared as times: no row's time is converted (DuckDB: 3 ms
    # against 45 ms a million rows, PostgreSQL 90 against 120-200 ms)
    midnight = dt.datetime.combine(day, dt.time(), dt.UTC)
    amounts: dict[AmountKey, Decimal] = {}
    mix: dict[tuple[str | None, str | None], int] = {}
    before = after = 0
    for currency, app_key, amount, result, reason, rows, early, late in run(
            f"SELECT {money}, result, reason, COUNT(*), COUNT(*) FILTER (WHERE {event} < ?), "
            f"COUNT(*) FILTER (WHERE {event} >= ?) FROM {table} WHERE cdr_date = ? "
            "GROUP BY 1, 2, 4, 5", (midnight, midnight + dt.timedelta(days=1), day)):
        if amount is not None:  # a group of rows without an amount has no money
            key = (currency, app_key)
            amounts[key] = amounts.get(key, Decimal(0)) + Decimal(amount)
        mix[result, reason] = mix.get((result, reason), 0) + rows
        before, after = before + early, after + late
    return amounts, mix, (before, after)


def _ids_twice_within_later(warehouse: Warehouse, con: Any, pool: ThreadPoolExecutor,
                            table: str, key: str, day: dt.date, rows: int
                            ) -> Callable[[], int]:
    """`_ids_twice_within`, when called for: counted on a connection of its own while `con`
    runs the day's other reads, where the warehouse allows it and the day is big enough to
    pay for a connection; on `con` if that one cannot be had or gives up on a lock."""
    distinct = warehouse.distinct_ids_sql(key)

    def here() -> int:
        return _ids_twice_within(partial(warehouse.execute, con), table, key, distinct, day)

    if rows < BESIDE_ROWS or not warehouse.reads_beside(con):
        return here

    def beside() -> int:
        with warehouse.beside() as other:
            return _ids_twice_within(partial(warehouse.execute, other), table, key, distinct,
                                     day)

    counted = pool.submit(beside)

    def result() -> int:
        try:
            return counted.result()
        except Exception:  # noqa: BLE001 - the same count is then made on `con`, or fails there
            return here()
    return result


def _ids_twice_within(run: Callable[..., list[tuple]], table: str, key: str, distinct: str,
                      day: dt.date) -> int:
    """The ids present more than once among the day's rows. A day has as many distinct ids as
    ids unless some repeat, which one aggregate of `distinct` (`Warehouse.distinct_ids_sql`)
    tells; only then are the ids themselves grouped and counted (PostgreSQL, 1M rows: 0.6-0.76
    s against 0.87-0.99 s by the ids' text, sorted bytewise, where the database's collation
    made it 2.2 s; by a hash of them 0.32-0.43 s)."""
    # rows less distinct ids: a missing id counts as a row, so a repeated one is looked at
    (surplus,), = run(f"SELECT COUNT(*) - COUNT(DISTINCT {distinct}) FROM {table} "
                      "WHERE cdr_date = ?", (day,))
    if not surplus:
        return 0
    (within,), = run(f"SELECT COUNT(*) FROM (SELECT {key} FROM {table} WHERE cdr_date = ? "
                     f"GROUP BY {key} HAVING COUNT(*) > 1) d", (day,))
    return within


def _file_load(row: tuple) -> FileLoad:
    values = dict(zip(FILE_COLUMNS, row, strict=True))
    values["cdr_date"] = as_date(values["cdr_date"])
    values["amount_totals"] = decode_amounts(values["amount_totals"])
    values["schema_drift"] = decode_drift(values["schema_drift"])
    return FileLoad(**values)



def store_report(warehouse: Warehouse, report: DailyReport) -> None:
    """Replace the day's figures in `cdr_reconciliation_daily`."""
    warehouse.replace_rows(
        RECONCILIATION, {"kind": report.kind, "cdr_date": report.day},
        RECONCILIATION.rows(report.rows(), {"computed_at": dt.datetime.now(dt.UTC)}))

"""What the Dagster modules share: asset keys, partitions, the pool, and the per-day loop."""

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from cdr_workflow.kinds import Kind
from cdr_workflow.settings import Settings
from cdr_workflow.warehouse.tables import Table

OWNERS = ["team:cdr-data"]
WAREHOUSE_POOL = "cdr_warehouse"  # one writer at a time on DuckDB; a pool limit elsewhere
DAY_JOB = "cdr_day_job"


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """UTC days from CDR_START_DATE; a day's partition exists once the day is over."""
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(),
                                        timezone="UTC")


def monthly_partitions(settings: Settings) -> dg.MonthlyPartitionsDefinition:
    """Months from CDR_START_DATE's; the running month is there too (month to date)."""
    return dg.MonthlyPartitionsDefinition(
        start_date=settings.start_date.replace(day=1).isoformat(), timezone="UTC", end_offset=1)


def backfill_policy(settings: Settings) -> dg.BackfillPolicy:
    """A backfill is one run by default, and always on DuckDB (one writer). With
    CDR_DAYS_PER_RUN set, PostgreSQL and Iceberg take days in parallel: runs of at most that
    many days, as many at once as the `cdr_warehouse` pool's limit allows (and then only the
    daemon runs a range: Dagster's CLI takes ranges of single-run assets only)."""
    if settings.warehouse_url.startswith("duckdb:") or not settings.days_per_run:
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.days_per_run)


def file_key(kind: Kind) -> dg.AssetKey:
    return dg.AssetKey(f"{kind.name}_file")


def table_key(kind: Kind) -> dg.AssetKey:
    return dg.AssetKey(kind.table)


def report_key(kind: Kind) -> dg.AssetKey:
    return dg.AssetKey(f"{kind.name}_reconciliation")


def kpi_key(kind: Kind) -> dg.AssetKey:
    return dg.AssetKey(f"{kind.name}_kpis")


def signal_key(kind: Kind) -> dg.AssetKey:
    return dg.AssetKey(f"{kind.name}_signals")


def expected_key(kind: Kind) -> dg.AssetKey:
    return dg.AssetKey(f"{kind.name}_expected_match")


def kind_asset_keys(kind: Kind) -> list[dg.AssetKey]:
    """What a day of one kind produces in one run (sensor, schedule, the day job)."""
    return [file_key(kind), table_key(kind), report_key(kind), kpi_key(kind), signal_key(kind)]


def column_schema(table: Table) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.sql_type, description=c.description)
                                   for c in table.columns])


DayWork = Callable[[dt.date], Iterator[tuple[dg.AssetKey, dict[str, Any]]]]


def materialize_days(context: dg.AssetExecutionContext, work: DayWork
                     ) -> dict[dt.date, Exception]:
    """Run `work` for each day of the run. Each day's assets are recorded as materialized
    partitions as soon as they are done; a day that fails is logged and the others go on.
    Returns the failures (day → error)."""
    failures: dict[dt.date, Exception] = {}
    for key in context.partition_keys:
        day = dt.date.fromisoformat(key)
        try:
            for asset_key, metadata in work(day):
                context.log_event(dg.AssetMaterialization(
                    asset_key=asset_key, partition=key, metadata=metadata))
        except Exception as exc:  # noqa: BLE001 - one day's failure must not stop the rest
            context.log.error(f"{context.op_handle.name} {day} failed: {exc}")
            failures[day] = exc
    return failures


def raise_for(failures: dict[dt.date, Exception], what: str, days: int) -> None:
    """Fail the step, naming each failed day and why (after the good days were recorded)."""
    if failures:
        listing = "\n".join(f"- {day}: {why}" for day, why in sorted(failures.items()))
        raise dg.Failure(
            description=f"{len(failures)} of {days} {what} day(s) failed:\n{listing}",
            metadata={"failed_days": ", ".join(d.isoformat() for d in sorted(failures))})

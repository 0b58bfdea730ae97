"""What the Dagster assets share: asset keys, owners, and the per-day loop of a run."""

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from cdr_workflow.layouts import table_name

OWNERS = ["team:cdr-data"]


def file_key(kind: str) -> dg.AssetKey:
    return dg.AssetKey(f"{kind}_file")


def table_key(kind: str) -> dg.AssetKey:
    return dg.AssetKey(table_name(kind))


def report_key(kind: str) -> dg.AssetKey:
    return dg.AssetKey(f"{kind}_reconciliation")


def kpi_key(kind: str) -> dg.AssetKey:
    return dg.AssetKey(f"{kind}_kpis")


def signal_key(kind: str) -> dg.AssetKey:
    return dg.AssetKey(f"{kind}_signals")


def expected_key(kind: str) -> dg.AssetKey:
    return dg.AssetKey(f"{kind}_expected_match")


def kind_asset_keys(kind: str) -> list[dg.AssetKey]:
    """What a day of one kind produces in one run (sensor, schedule, the day job). The
    expected-records match follows by its automation condition, after the day is loaded."""
    return [file_key(kind), table_key(kind), report_key(kind), kpi_key(kind), signal_key(kind)]


DayWork = Callable[[dt.date], Iterator[tuple[dg.AssetKey, dict[str, Any]]]]


def materialize_days(context: dg.AssetExecutionContext, work: DayWork,
                     raise_at_end: bool = True) -> dict[dt.date, str]:
    """Run `work` for each day of the run. Each day's assets are recorded as materialized
    partitions as soon as they are done; a day that fails is logged and the others go on.
    Returns the failures, or raises a Failure naming each failed day and why."""
    failures: dict[dt.date, str] = {}
    for key in context.partition_keys:
        day = dt.date.fromisoformat(key)
        try:
            for asset_key, metadata in work(day):
                context.log_event(dg.AssetMaterialization(
                    asset_key=asset_key, partition=key, metadata=metadata))
        except Exception as exc:  # noqa: BLE001 - one day's failure must not stop the rest
            context.log.error(f"{context.op_handle.name} {day} failed: {exc}")
            failures[day] = str(exc)
    if raise_at_end:
        raise_for(failures, context.op_handle.name, len(context.partition_keys))
    return failures


def raise_for(failures: dict[dt.date, str], what: str, days: int) -> None:
    if failures:
        listing = "\n".join(f"- {day}: {why}" for day, why in sorted(failures.items()))
        raise dg.Failure(
            description=f"{len(failures)} of {days} {what} day(s) failed:\n{listing}",
            metadata={"failed_days": ", ".join(d.isoformat() for d in sorted(failures))})

"""The one daily partitioning (UTC days from CDR_START_DATE) and the warehouse pool."""

from __future__ import annotations

import dagster as dg

from cdr_workflow.settings import Settings

WAREHOUSE_POOL = "cdr_warehouse"  # one writer at a time: DuckDB allows no more


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """A day's partition exists once the day is over (Sinch delivers the day after)."""
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(),
                                        timezone="UTC")

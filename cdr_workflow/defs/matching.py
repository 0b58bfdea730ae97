"""The customer's own records matched with the CDRs, per day (group `matching`)."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg

from cdr_workflow.defs.common import (
    OWNERS,
    WAREHOUSE_POOL,
    backfill_policy,
    daily_partitions,
    expected_key,
    materialize_days,
    raise_for,
    table_key,
)
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.kinds import KINDS, Kind
from cdr_workflow.matching import LATE_DAYS, STATUSES, day_loaded, match_day
from cdr_workflow.settings import Settings


def build_expected_match(kind: Kind, settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=expected_key(kind), group_name="matching", partitions_def=daily_partitions(settings),
        deps=[dg.AssetDep(table_key(kind), partition_mapping=dg.TimeWindowPartitionMapping(
            end_offset=LATE_DAYS, allow_nonexistent_upstream_partitions=True))],
        output_required=False,
        backfill_policy=backfill_policy(settings),
        pool=WAREHOUSE_POOL, kinds={"table"}, owners=OWNERS, tags={"cdr_kind": kind.name},
        description=f"Your own records of {kind.name} requests (`expected_{kind.name}_"
        "YYYY-MM-DD.csv` in the expected folder or prefix) matched with the CDRs: matched, "
        "matched late, amount mismatch, time skew, missing in CDRs, unexpected in CDRs. Table "
        "`cdr_expected_match`. Brought up to date by `cdr_follow_up` when the day's own records "
        "land or change, and when the day or one of the next three days loads (late CDRs).")
    def expected_match(context: dg.AssetExecutionContext, cdr: dg.ResourceParam[CdrWorkflow]
                       ) -> Iterator[dg.Output]:
        listing = cdr.expected_source.list()

        def match(day: dt.date) -> Iterator[tuple[dg.AssetKey, dict[str, Any]]]:
            files = listing.find(kind.name, day)
            if not files:  # an optional input: nothing to match is not a failure
                yield context.asset_key, {"expected_files": 0}
                return
            if not day_loaded(cdr.warehouse, kind, day):
                yield context.asset_key, {"expected_files": len(files), "status": (
                    "waiting: no CDRs of this day are loaded yet; matched when they are")}
                return
            matches = match_day(cdr.warehouse, cdr.expected_source, files, kind, day,
                                cdr.settings.tolerances)
            counts = {status: sum(m.status == status for m in matches) for status in STATUSES}
            problems = [m for m in matches if m.status not in ("matched", "matched_late")]
            context.log.info(f"{kind.name} {day}: " + ", ".join(
                f"{n} {s}" for s, n in counts.items() if n))
            yield context.asset_key, {
                **counts, "expected_files": len(files), "findings": dg.MetadataValue.md(
                    "| id | status | detail |\n|---|---|---|\n" + "\n".join(
                        f"| {m.id} | {m.status} | {m.detail} |" for m in problems[:50])
                    if problems else "none")}

        with cdr.warehouse.session():
            failures = materialize_days(context, match)
        raise_for(failures, f"{kind.name} expected-match", len(context.partition_keys))
        yield from ()  # each day was logged as its own materialization

    return expected_match


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings.from_env()
    return dg.Definitions(assets=[build_expected_match(kind, settings)
                                  for kind in KINDS.values()])

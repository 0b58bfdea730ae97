"""What follows a load: the own-records match and the monthly billing, kept up to date.

The `cdr_follow_up` sensor reads the loads recorded since its cursor (each kind's table
materializations) and the own-records files, then asks for exactly the partitions they affect:
the loaded day's match and the three days before it (whose late CDRs it may hold), the day of
an own-records file that landed or changed, and the loaded day's billing month. Runs for
contiguous days are one ranged run. Nothing is missed while other runs fail or are in progress:
the cursor moves only over loads it has turned into requests.
"""

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg

from cdr_workflow.defs.common import (
    daily_partitions,
    expected_key,
    monthly_partitions,
    table_key,
)
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.kinds import KINDS, Kind
from cdr_workflow.matching import days_to_rematch
from cdr_workflow.settings import Settings
from cdr_workflow.sources import Listing

BILLING_KEY = dg.AssetKey("cdr_billing_monthly")
MATCH_JOB, BILLING_JOB = "cdr_match_job", "cdr_billing_job"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
MAX_LOADS_PER_TICK = 1000


@dataclass
class FollowUpCursor:
    """The last load seen per kind (event storage id) and the own-records files seen."""

    loads_seen: dict[str, int] = field(default_factory=dict)
    own_records_seen: dict[str, str] = field(default_factory=dict)  # path → fingerprint

    @classmethod
    def parse(cls, text: str | None) -> "FollowUpCursor":
        data = json.loads(text) if text else {}
        return cls(data.get("loads_seen", {}), data.get("own_records_seen", {}))

    def dump(self) -> str:
        return json.dumps({"loads_seen": self.loads_seen,
                           "own_records_seen": self.own_records_seen})


def contiguous_ranges(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if ranges and day - ranges[-1][1] == dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _new_loads(instance: dg.DagsterInstance, kind: Kind, cursor: FollowUpCursor
               ) -> set[dt.date]:
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=table_key(kind),
                              after_storage_id=cursor.loads_seen.get(kind.name)),
        limit=MAX_LOADS_PER_TICK, ascending=True)
    if result.records:
        cursor.loads_seen[kind.name] = result.records[-1].storage_id
    return {dt.date.fromisoformat(r.partition_key) for r in result.records if r.partition_key}


def _changed_own_records(listing: Listing, kind: Kind, cursor: FollowUpCursor) -> set[dt.date]:
    changed = set()
    for f in listing.files:
        if f.kind == kind.name and cursor.own_records_seen.get(f.relative_path) != f.fingerprint:
            cursor.own_records_seen[f.relative_path] = f.fingerprint
            changed.add(f.day)
    return changed


def build_jobs(settings: Settings) -> list:
    return [
        dg.define_asset_job(
            MATCH_JOB, partitions_def=daily_partitions(settings),
            selection=dg.AssetSelection.assets(*[expected_key(k) for k in KINDS.values()]),
            description="Matches the customer's own records with the CDRs, for a range of days."),
        dg.define_asset_job(
            BILLING_JOB, partitions_def=monthly_partitions(settings),
            selection=dg.AssetSelection.assets(BILLING_KEY),
            description="Recomputes a month's invoice lines from the loaded days."),
    ]


def build_follow_up_sensor(settings: Settings, jobs: list) -> dg.SensorDefinition:
    days = daily_partitions(settings)
    months = monthly_partitions(settings)

    @dg.sensor(
        name="cdr_follow_up", minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING, jobs=jobs,
        description="After days load (or reload) and when own-records files land or change: "
        "brings the affected days' expected-records match and the affected months' billing "
        "up to date. Reads Dagster's event log and lists the own-records folder only.")
    def cdr_follow_up(context: dg.SensorEvaluationContext,
                      cdr: dg.ResourceParam[CdrWorkflow]) -> dg.SensorResult:
        cursor = FollowUpCursor.parse(context.cursor)
        valid_days = set(days.get_partition_keys())
        valid_months = set(months.get_partition_keys())
        own_records = cdr.expected_source.list()
        requests, affected_months = [], set()
        for kind in KINDS.values():
            loaded = _new_loads(context.instance, kind, cursor)
            affected_months |= {d.replace(day=1) for d in loaded}
            rematch = {d for day in loaded for d in days_to_rematch(day)}
            rematch |= _changed_own_records(own_records, kind, cursor)
            for first, last in contiguous_ranges(
                    d for d in rematch if d.isoformat() in valid_days):
                requests.append(dg.RunRequest(
                    job_name=MATCH_JOB, asset_selection=[expected_key(kind)],
                    tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat(),
                          "cdr_kind": kind.name}))
        requests += [dg.RunRequest(job_name=BILLING_JOB, partition_key=m.isoformat())
                     for m in sorted(affected_months) if m.isoformat() in valid_months]
        return dg.SensorResult(run_requests=requests, cursor=cursor.dump())

    return cdr_follow_up


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings.from_env()
    jobs = build_jobs(settings)
    return dg.Definitions(jobs=jobs, sensors=[build_follow_up_sensor(settings, jobs)])

"""What starts runs: a drop-folder sensor (a file lands → its day loads) and a daily schedule."""


import datetime as dt
import hashlib
import json

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from cdr_workflow.defs.assets import kind_asset_keys, report_key
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.layouts import KINDS
from cdr_workflow.sources import CdrFile

MAX_REMEMBERED = 2000  # paths remembered in the sensor cursor, to log each oddity once


def day_run_key(kind: str, day: dt.date, files: list[CdrFile]) -> str:
    """Changes whenever a file of the day is added, replaced or removed."""
    digest = hashlib.sha256("\n".join(
        f"{f.relative_path}|{f.fingerprint}" for f in sorted(
            files, key=lambda f: f.relative_path)).encode()).hexdigest()[:16]
    return f"{kind}:{day.isoformat()}:{digest}"


def build_file_sensor(job: UnresolvedAssetJobDefinition,
                      partitions: dg.DailyPartitionsDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name="cdr_file_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches the drop folder (or S3 prefix) and loads a day when one of its "
        "files lands or is replaced. Never opens the warehouse.",
    )
    def cdr_file_sensor(context: dg.SensorEvaluationContext,
                        cdr: dg.ResourceParam[CdrWorkflow]):
        listing = cdr.source.list()
        already_noted = set(json.loads(context.cursor)) if context.cursor else set()
        noted = set(listing.ignored)
        for path in sorted(noted - already_noted):
            context.log.info(f"ignoring {path}: not a CDR file name by the pattern")
        valid_days = set(partitions.get_partition_keys())
        by_day: dict[tuple[str, dt.date], list[CdrFile]] = {}
        for f in listing.files:
            if f.day.isoformat() in valid_days:
                by_day.setdefault((f.kind, f.day), []).append(f)
                continue
            noted.add(f.relative_path)
            if f.relative_path not in already_noted:
                context.log.warning(f"ignoring {f.relative_path}: {f.day} is outside the "
                                    "partitions (before CDR_START_DATE, or not over yet)")
        for (kind, day), files in sorted(by_day.items()):
            yield dg.RunRequest(run_key=day_run_key(kind, day, files),
                                partition_key=day.isoformat(),
                                asset_selection=kind_asset_keys(kind),
                                tags={"cdr_kind": kind})
        context.update_cursor(json.dumps(sorted(noted)[:MAX_REMEMBERED]))

    return cdr_file_sensor


def build_daily_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="cdr_daily_schedule",
        job=job,
        cron_schedule="0 6 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="At 06:00 UTC, loads yesterday for each kind the sensor has not loaded, "
        "so a day with no file fails visibly instead of going unnoticed.",
    )
    def cdr_daily_schedule(context: dg.ScheduleEvaluationContext):
        yesterday = (context.scheduled_execution_time.astimezone(dt.UTC).date()
                     - dt.timedelta(days=1)).isoformat()
        for kind in KINDS:
            done = context.instance.get_materialized_partitions(report_key(kind))
            if yesterday in done:
                continue
            yield dg.RunRequest(run_key=f"schedule:{kind}:{yesterday}", partition_key=yesterday,
                                asset_selection=kind_asset_keys(kind), tags={"cdr_kind": kind})

    return cdr_daily_schedule

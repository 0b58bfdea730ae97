"""What starts loads: the day job, a file sensor (a file lands → its day loads) and a daily
schedule (a day nobody loaded fails visibly)."""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

import dagster as dg

from cdr_workflow.defs.common import DAY_JOB, daily_partitions, kind_asset_keys, report_key
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.kinds import KINDS
from cdr_workflow.settings import Settings
from cdr_workflow.sources import CdrFile, Listing

MAX_REMEMBERED = 1000  # odd paths remembered in the cursor, so each is logged once


def day_run_key(kind: str, day: dt.date, files: list[CdrFile]) -> str:
    """Changes whenever a file of the day is added or replaced: a new key means a new run."""
    digest = hashlib.sha256("\n".join(
        f"{f.relative_path}|{f.fingerprint}" for f in sorted(
            files, key=lambda f: f.relative_path)).encode()).hexdigest()[:16]
    return f"{kind}:{day.isoformat()}:{digest}"


@dataclass
class SensorCursor:
    """Compact: a last-modified watermark and the few odd paths already logged."""

    watermark: dt.datetime | None = None
    noted: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str | None) -> "SensorCursor":
        if not text:
            return cls()
        data = json.loads(text)
        mark = data.get("watermark")
        return cls(dt.datetime.fromisoformat(mark) if mark else None, set(data.get("noted", [])))

    def dump(self) -> str:
        return json.dumps({"watermark": self.watermark.isoformat() if self.watermark else None,
                           "noted": sorted(self.noted)[:MAX_REMEMBERED]})


def days_to_load(listing: Listing, cursor: SensorCursor, valid_days: set[str],
                 log: dg.DagsterLogManager) -> tuple[dict[tuple[str, dt.date], str], SensorCursor]:
    """Days touched since the watermark (inclusive: same-second arrivals are not missed,
    and their unchanged run keys make the repeat harmless), with their run keys."""
    noted = set(listing.ignored)
    for path in sorted(noted - cursor.noted):
        log.info(f"ignoring {path}: not a CDR file name by the pattern")
    touched: set[tuple[str, dt.date]] = set()
    for f in listing.files:
        if f.day.isoformat() not in valid_days:
            if f.relative_path not in cursor.noted:
                log.warning(f"ignoring {f.relative_path}: {f.day} is outside the partitions "
                            "(before CDR_START_DATE, or not over yet)")
            noted.add(f.relative_path)
        elif cursor.watermark is None or f.modified >= cursor.watermark:
            touched.add((f.kind, f.day))
    requests = {(kind, day): day_run_key(kind, day, listing.find(kind, day))
                for kind, day in sorted(touched)}
    marks = [f.modified for f in listing.files]
    return requests, SensorCursor(max(marks, default=cursor.watermark), noted)


def build_file_sensor(partitions: dg.DailyPartitionsDefinition,
                      running: bool) -> dg.SensorDefinition:
    @dg.sensor(
        name="cdr_file_sensor",
        job_name=DAY_JOB,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING if running
        else dg.DefaultSensorStatus.STOPPED,
        description="Watches the drop folder (or S3 prefix) and loads a day when one of its "
        "files lands or is replaced. Lists files only; never opens the warehouse.",
    )
    def cdr_file_sensor(context: dg.SensorEvaluationContext,
                        cdr: dg.ResourceParam[CdrWorkflow]):
        requests, cursor = days_to_load(cdr.source.list(), SensorCursor.parse(context.cursor),
                                        set(partitions.get_partition_keys()), context.log)
        for (kind, day), run_key in requests.items():
            yield dg.RunRequest(run_key=run_key, partition_key=day.isoformat(),
                                asset_selection=kind_asset_keys(KINDS[kind]),
                                tags={"cdr_kind": kind})
        context.update_cursor(cursor.dump())

    return cdr_file_sensor


def build_daily_schedule() -> dg.ScheduleDefinition:
    @dg.schedule(
        name="cdr_daily_schedule",
        job_name=DAY_JOB,
        cron_schedule="0 6 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="At 06:00 UTC, loads yesterday for each kind the sensor has not loaded, "
        "so a day with no file fails visibly instead of going unnoticed.",
    )
    def cdr_daily_schedule(context: dg.ScheduleEvaluationContext):
        yesterday = (context.scheduled_execution_time.astimezone(dt.UTC).date()
                     - dt.timedelta(days=1)).isoformat()
        for kind in KINDS.values():
            if yesterday in context.instance.get_materialized_partitions(report_key(kind)):
                continue
            yield dg.RunRequest(run_key=f"schedule:{kind.name}:{yesterday}",
                                partition_key=yesterday, asset_selection=kind_asset_keys(kind),
                                tags={"cdr_kind": kind.name})

    return cdr_daily_schedule


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings.from_env()
    partitions = daily_partitions(settings)
    day_job = dg.define_asset_job(
        DAY_JOB, partitions_def=partitions,
        selection=dg.AssetSelection.assets(*[key for kind in KINDS.values()
                                             for key in kind_asset_keys(kind)]),
        description="Loads and reconciles one day of every kind (or of one, from a sensor).")
    return dg.Definitions(
        jobs=[day_job],
        sensors=[build_file_sensor(partitions, settings.sensor_running)],
        schedules=[build_daily_schedule()])

"""The drop-folder sensor and the daily schedule, evaluated on the real Definitions."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg
import pytest

from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.demo import write_day

pytestmark = pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
DAY = dt.date(2026, 11, 21)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(defs, settings, instance, cursor: str | None = None):
    sensor = defs.resolve_sensor_def("cdr_file_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources={"cdr": CdrWorkflow(settings)})
    return sensor.evaluate_tick(context)


def test_sensor_requests_each_kind_and_day_with_a_file(defs, settings, instance, drop_dir):
    write_day(drop_dir, DAY, rows_per_file=5)
    write_day(drop_dir, DAY - dt.timedelta(days=1), rows_per_file=5)
    requests = tick(defs, settings, instance).run_requests
    assert sorted((r.tags["cdr_kind"], r.partition_key) for r in requests) == [
        ("verification", "2026-11-20"), ("verification", "2026-11-21"),
        ("voice", "2026-11-20"), ("voice", "2026-11-21")]
    voice = next(r for r in requests if r.tags["cdr_kind"] == "voice")
    assert {k.to_user_string() for k in voice.asset_selection} == {
        "voice_file", "voice_cdrs", "voice_reconciliation", "voice_kpis", "voice_signals"}


def test_unchanged_files_keep_their_run_key_and_a_replaced_file_gets_a_new_one(
        defs, settings, instance, drop_dir):
    (path, *_) = write_day(drop_dir, DAY, rows_per_file=5)
    keys = {r.tags["cdr_kind"]: r.run_key for r in tick(defs, settings, instance).run_requests}
    again = {r.tags["cdr_kind"]: r.run_key for r in tick(defs, settings, instance).run_requests}
    assert keys == again  # Dagster drops a request whose run key already ran
    stat = path.stat()
    path.write_text(path.read_text() + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    replaced = {r.tags["cdr_kind"]: r.run_key for r in tick(defs, settings, instance).run_requests}
    changed_kind = "verification" if "verification" in path.name else "voice"
    assert replaced[changed_kind] != keys[changed_kind]
    other = "voice" if changed_kind == "verification" else "verification"
    assert replaced[other] == keys[other]


def test_the_cursor_watermark_limits_requests_to_days_touched_since(
        defs, settings, instance, drop_dir):
    write_day(drop_dir, DAY - dt.timedelta(days=1), rows_per_file=5)
    first = tick(defs, settings, instance)
    assert len(first.run_requests) == 2
    write_day(drop_dir, DAY, rows_per_file=5)
    second = tick(defs, settings, instance, cursor=first.cursor)
    new = {r.run_key for r in second.run_requests if r.partition_key == "2026-11-21"}
    repeated = {r.run_key for r in second.run_requests if r.partition_key != "2026-11-21"}
    assert len(new) == 2
    # files of the watermark's own second come again, with the run key that already ran
    assert repeated <= {r.run_key for r in first.run_requests}
    third = tick(defs, settings, instance, cursor=second.cursor)
    assert {r.run_key for r in third.run_requests} <= new | repeated
    assert '"watermark"' in third.cursor and len(third.cursor) < 200


def test_other_files_and_days_outside_the_partitions_are_logged_once_not_requested(
        defs, settings, instance, drop_dir):
    (drop_dir / "notes.txt").write_text("hello")
    write_day(drop_dir, dt.date(2025, 1, 1), rows_per_file=2)  # before CDR_START_DATE
    first = tick(defs, settings, instance)
    assert first.run_requests == []
    second = tick(defs, settings, instance, cursor=first.cursor)
    assert second.run_requests == [] and second.cursor == first.cursor
    assert "notes.txt" in first.cursor


def test_sensor_never_opens_the_warehouse(defs, settings, instance, drop_dir):
    write_day(drop_dir, DAY, rows_per_file=2)
    settings.warehouse_url  # noqa: B018
    tick(defs, settings, instance)
    assert not (drop_dir.parent / "warehouse.duckdb").exists()


def test_schedule_requests_yesterday_for_kinds_not_yet_loaded(defs, instance):
    schedule = defs.resolve_schedule_def("cdr_daily_schedule")
    at = dt.datetime(2026, 11, 22, 6, 0, tzinfo=dt.UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                        repository_def=defs.get_repository_def())
    requests = schedule.evaluate_tick(context).run_requests
    assert sorted((r.tags["cdr_kind"], r.partition_key) for r in requests) == [
        ("verification", "2026-11-21"), ("voice", "2026-11-21")]

    instance.report_runless_asset_event(dg.AssetMaterialization(
        "voice_reconciliation", partition="2026-11-21"))
    requests = schedule.evaluate_tick(context).run_requests
    assert [r.tags["cdr_kind"] for r in requests] == ["verification"]

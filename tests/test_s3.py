"""The S3 source and sensor against moto's server over HTTP, with injected faults."""

from __future__ import annotations

import csv
import datetime as dt

import dagster as dg
import pytest
from helpers import load_definitions
from s3_fixtures import moto_port, s3_env  # noqa: F401 - fixtures

from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.demo import write_day
from cdr_workflow.kinds import VERIFICATION, VOICE
from cdr_workflow.load import load_day
from cdr_workflow.settings import Settings
from cdr_workflow.sources.s3 import S3ReadError
from cdr_workflow.warehouse import open_warehouse

pytestmark = pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
DAY = dt.date(2026, 11, 21)


def local_records(tmp_path) -> int:
    """Records of the voice files uploaded, by Python's own csv reader (less each header)."""
    total = 0
    for path in (tmp_path / "staging").rglob("voice_*.csv"):
        with path.open(newline="", encoding="utf-8") as f:
            total += sum(1 for row in csv.reader(f, delimiter=";") if row) - 1
    return total


def upload_day(proxy, tmp_path, day: dt.date, rows: int = 20) -> list[str]:
    keys = []
    for path in write_day(tmp_path / "staging" / day.isoformat(), day, rows):
        key = f"sinch/{path.name}"
        proxy.client.upload_file(str(path), proxy.bucket, key)
        keys.append(key)
    return keys


@pytest.fixture
def s3_cdr_env(s3_env, env):  # noqa: F811
    return {**env, "CDR_SOURCE": "s3", "CDR_S3_BUCKET": s3_env.bucket, "CDR_S3_PREFIX": "sinch/"}


@pytest.fixture
def s3_settings(s3_cdr_env):
    return Settings.from_env(s3_cdr_env)


def test_materialize_a_day_from_s3(s3_env, s3_cdr_env, s3_settings, tmp_path):  # noqa: F811
    upload_day(s3_env, tmp_path, DAY)
    defs = load_definitions(s3_cdr_env)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("cdr_day_job").execute_in_process(
            partition_key=DAY.isoformat(), instance=instance)
    assert result.success
    files = open_warehouse(s3_settings.warehouse_url).query(
        "SELECT source_uri, rows_read, rows_loaded + rows_rejected FROM cdr_files ORDER BY 1")
    assert len(files) == 5
    assert all(uri.startswith(f"s3://{s3_env.bucket}/sinch/") for uri, _, _ in files)
    assert all(read == accounted for _, read, accounted in files)


def test_sensor_on_s3_pages_through_thousands_of_keys_with_a_compact_cursor(
        s3_env, s3_cdr_env, s3_settings, tmp_path):  # noqa: F811
    upload_day(s3_env, tmp_path, DAY, rows=3)
    for i in range(1200):  # other objects under the prefix: more than one listing page
        s3_env.client.put_object(Bucket=s3_env.bucket, Key=f"sinch/archive/{i:05d}.log", Body=b"")
    defs = load_definitions(s3_cdr_env)
    sensor = defs.resolve_sensor_def("cdr_file_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs,
                                          resources={"cdr": CdrWorkflow(s3_settings)})
        first = sensor.evaluate_tick(context)
    assert sorted((r.tags["cdr_kind"], r.partition_key) for r in first.run_requests) == [
        ("verification", "2026-11-21"), ("voice", "2026-11-21")]
    assert len(first.cursor) < 60_000  # noted odd paths are capped; the watermark is one value


def test_transient_500s_are_retried_and_the_load_succeeds(s3_env, s3_settings, tmp_path):  # noqa: F811
    upload_day(s3_env, tmp_path, DAY)
    cdr = CdrWorkflow(s3_settings)
    s3_env.faults.errors_left = 3
    result = load_day(cdr.source, cdr.warehouse, VOICE, DAY, "run-1")
    assert result.rows_read == local_records(tmp_path) and s3_env.faults.errors_left == 0


def test_a_body_cut_off_mid_stream_resumes_from_the_last_byte(s3_env, s3_settings, tmp_path):  # noqa: F811
    upload_day(s3_env, tmp_path, DAY, rows=2000)
    cdr = CdrWorkflow(s3_settings)
    s3_env.faults.cut_bodies_left = 2
    result = load_day(cdr.source, cdr.warehouse, VOICE, DAY, "run-1")
    assert s3_env.faults.cut_bodies_left == 0
    assert result.rows_read == local_records(tmp_path)  # every record of the uploaded files


def test_a_server_that_stays_down_fails_clearly_and_loads_nothing(
        s3_env, s3_cdr_env, s3_settings, tmp_path):  # noqa: F811
    upload_day(s3_env, tmp_path, DAY)
    cdr = CdrWorkflow(s3_settings)
    load_day(cdr.source, cdr.warehouse, VOICE, DAY, "run-1")
    listing = cdr.source.list()
    s3_env.faults.down = True
    with pytest.raises(S3ReadError, match=rf"s3://{s3_env.bucket}/sinch/voice_\w+_2026-11-21"):
        load_day(cdr.source, cdr.warehouse, VOICE, DAY, "run-2", listing)
    with pytest.raises(S3ReadError, match=rf"cannot list s3://{s3_env.bucket}/sinch/"):
        cdr.source.list()
    assert cdr.warehouse.query("SELECT DISTINCT load_id FROM voice_cdrs") == [("run-1",)]


def test_a_partial_download_is_detected_and_nothing_is_loaded(
        s3_env, s3_cdr_env, s3_settings, tmp_path):  # noqa: F811
    upload_day(s3_env, tmp_path, DAY, rows=500)
    cdr = CdrWorkflow(s3_settings)
    listing = cdr.source.list()
    s3_env.faults.cut_bodies_left, s3_env.faults.down_after_cut = 1, True
    with pytest.raises(S3ReadError, match=r"cannot read s3://\S+ at byte [1-9]\d*"):
        load_day(cdr.source, cdr.warehouse, VERIFICATION, DAY, "run-1", listing)
    assert cdr.warehouse.query("SELECT COUNT(*) FROM cdr_files") == [(0,)]
    assert cdr.warehouse.query("SELECT COUNT(*) FROM verification_cdrs") == [(0,)]

"""The real Definitions object: structure, a day's materialization, backfill ranges."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import logging
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from helpers import load_definitions

import cdr_workflow.definitions
from cdr_workflow.demo import write_day
from cdr_workflow.warehouse import open_warehouse
from cdr_workflow.warehouse.base import CacheFit
from cdr_workflow.warehouse.postgres import PostgresWarehouse

DAY = dt.date(2026, 11, 21)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

ASSETS = ["verification_file", "verification_cdrs", "verification_reconciliation",
          "voice_file", "voice_cdrs", "voice_reconciliation"]
INSIGHTS = ["verification_kpis", "verification_signals", "verification_expected_match",
            "voice_kpis", "voice_signals", "voice_expected_match"]


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def run_day(defs, instance, day: dt.date) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("cdr_day_job").execute_in_process(
        partition_key=day.isoformat(), instance=instance, raise_on_error=False)


def run_range(defs, instance, first: dt.date, last: dt.date) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("cdr_day_job").execute_in_process(
        instance=instance, raise_on_error=False,
        tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()})


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_definitions_hold_the_assets_groups_checks_and_automation(defs):
    graph = defs.resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert keys == sorted([*ASSETS, *INSIGHTS, "cdr_billing_monthly"])
    assert graph.get(dg.AssetKey("cdr_billing_monthly")).group_name == "billing"
    for name in ASSETS + INSIGHTS:
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == ("matching" if name.endswith("_expected_match")
                                   else name.split("_")[0])
        assert node.description
        assert node.partitions_def.get_first_partition_key() == "2026-11-01"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    table = graph.get(dg.AssetKey("voice_cdrs"))
    columns = [c.name for c in table.metadata["dagster/column_schema"].columns]
    assert {"call_id", "call_type", "amount", "cdr_date", "source_line"} <= set(columns)
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("voice_cdrs")}
    assert checks == {"reject_ratio", "counts_add_up", "no_duplicate_ids", "key_columns_present",
                      "amounts_match_file"}
    assert defs.resolve_sensor_def("cdr_file_sensor").default_status == \
        dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_schedule_def("cdr_daily_schedule").cron_schedule == "0 6 * * *"


def _contents(defs: dg.Definitions) -> dict[str, list[str]]:
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    return {"assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
            "checks": sorted(str(k) for k in graph.asset_check_keys),
            "sensors": sorted(s.name for s in repository.sensor_defs),
            "schedules": sorted(s.name for s in repository.schedule_defs),
            "jobs": sorted(j.name for j in repository.get_all_jobs()),
            "resources": sorted(repository.get_top_level_resources())}


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_the_defs_folder_loads_as_dagster_s_own_loader_would_load_it(defs):
    # a module added to the folder with definitions but no `defs()` would be missed here
    folder = Path(cdr_workflow.definitions.__file__).parent
    dagster_s = dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=folder),
                                     dg.Definitions(executor=dg.in_process_executor))
    assert _contents(defs) == _contents(dagster_s)
    assert len(_contents(defs)["assets"]) == len(ASSETS + INSIGHTS) + 1


def test_loading_the_code_imports_no_other_package_s_components():
    """dagster-aws registers components; cataloguing them made loading the code about 0.9 s
    slower."""
    script = ("import sys, cdr_workflow.definitions as d; d.defs(); "
              "print(sorted(m for m in sys.modules if m.endswith('.components')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert "dagster_aws.components" not in result.stdout
    assert "'dagster.components'" in result.stdout  # the check can see what it looks for


def test_materialize_a_day_loads_every_file_and_rerunning_changes_nothing(
        defs, settings, instance, drop_dir):
    write_day(drop_dir, DAY, rows_per_file=50)
    first = run_day(defs, instance, DAY)
    assert first.success
    warehouse = open_warehouse(settings.warehouse_url)
    snapshot_sql = ("SELECT kind, source_file, rows_read, rows_loaded, rows_rejected "
                    "FROM cdr_files ORDER BY source_file")
    files = warehouse.query(snapshot_sql)
    assert [f[1] for f in files] == sorted(p.name for p in drop_dir.iterdir())
    assert all(read == loaded + rejected for _, _, read, loaded, rejected in files)
    call_types = warehouse.query("SELECT DISTINCT call_type FROM voice_cdrs ORDER BY 1")
    assert call_types == [("app_app",), ("phone_originated",), ("phone_terminated",),
                          ("sip_terminated",)]

    assert run_day(defs, instance, DAY).success
    assert warehouse.query(snapshot_sql) == files
    assert warehouse.query("SELECT COUNT(*) - COUNT(DISTINCT call_id) FROM voice_cdrs") == [(0,)]

    checks = first.get_asset_check_evaluations()
    assert {(c.asset_key.to_user_string(), c.check_name, c.passed) for c in checks} >= {
        ("voice_cdrs", "counts_add_up", True), ("voice_cdrs", "amounts_match_file", True),
        ("voice_cdrs", "no_duplicate_ids", True), ("verification_cdrs", "reject_ratio", True)}
    report = (settings.reports_dir / "voice" / "2026-11-21.md").read_text()
    assert "# Voice CDRs, 2026-11-21" in report and "late records" in report
    ((late,),) = warehouse.query("SELECT value FROM cdr_reconciliation_daily "
                                 "WHERE kind = 'voice' AND measure = 'late_records_before_day'")
    assert Decimal(str(late)) == 1  # the demo's late app-app record


def test_materialization_metadata_plots_across_partitions(defs, instance, drop_dir):
    write_day(drop_dir, DAY, rows_per_file=20)
    assert run_day(defs, instance, DAY).success
    event = instance.get_latest_materialization_event(dg.AssetKey("voice_reconciliation"))
    metadata = event.asset_materialization.metadata
    assert event.asset_materialization.partition == "2026-11-21"
    records = 0  # counted by Python's own csv reader, not ours: records less each header
    for path in drop_dir.glob("voice_*.csv"):
        with path.open(newline="", encoding="utf-8") as f:
            records += sum(1 for row in csv.reader(f, delimiter=";") if row) - 1
    assert metadata["rows_read"].value == records
    assert isinstance(metadata["report"], dg.MarkdownMetadataValue)
    assert metadata["late_records"].value == 1


def test_a_range_loads_in_one_run_and_a_missing_day_fails_alone(defs, instance, drop_dir):
    for day in (DAY - dt.timedelta(days=2), DAY):  # the day between has no file
        write_day(drop_dir, day, rows_per_file=10)
    result = run_range(defs, instance, DAY - dt.timedelta(days=2), DAY)
    assert not result.success
    failures = {e.step_key: e.step_failure_data.user_failure_data.description
                for e in result.all_events if e.is_step_failure}
    assert failures["verification_pipeline"].startswith(
        "1 of 3 verification day(s) failed:\n- 2026-11-20: no verification CDR file for "
        "2026-11-20 in folder")
    # the expected-records match (group matching) follows its days by the cdr_follow_up sensor
    for asset in [a for a in ASSETS + INSIGHTS if not a.endswith("expected_match")]:
        done = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert done == {"2026-11-19", "2026-11-21"}, asset


def test_a_full_range_succeeds(defs, instance, drop_dir):
    days = [DAY - dt.timedelta(days=i) for i in range(3)]
    for day in days:
        write_day(drop_dir, day, rows_per_file=10)
    assert run_range(defs, instance, days[-1], days[0]).success
    done = instance.get_materialized_partitions(dg.AssetKey("voice_cdrs"))
    assert done == {d.isoformat() for d in days}


@pytest.mark.parametrize("url", ["postgresql://cdr@db.example:5432/cdr", "iceberg://lake/cdr"])
def test_backfills_split_into_runs_of_days_per_run_where_the_warehouse_takes_parallel_runs(
        tmp_path, url):
    defs = load_definitions({"CDR_DROP_DIR": str(tmp_path), "CDR_START_DATE": "2026-11-01",
                             "CDR_WAREHOUSE_URL": url, "CDR_DAYS_PER_RUN": "7"})
    graph = defs.resolve_asset_graph()
    for name in ("voice_cdrs", "verification_cdrs", "voice_expected_match"):
        policy = graph.get(dg.AssetKey(name)).backfill_policy
        assert policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=7)
    unsplit = load_definitions({"CDR_DROP_DIR": str(tmp_path), "CDR_WAREHOUSE_URL": url})
    assert unsplit.resolve_asset_graph().get(dg.AssetKey("voice_cdrs")).backfill_policy == (
        dg.BackfillPolicy.single_run())  # by default: one run, as Dagster's CLI needs


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_a_postgres_load_reports_its_id_index_beside_shared_buffers(defs, instance, drop_dir,
                                                                     warehouse_url):
    write_day(drop_dir, DAY, rows_per_file=20)
    result = run_day(defs, instance, DAY)
    assert result.success
    metadata = instance.get_latest_materialization_event(
        dg.AssetKey("voice_cdrs")).asset_materialization.metadata
    with psycopg.connect(warehouse_url) as con:  # PostgreSQL's own words, not our query
        (shown,) = con.execute("SHOW shared_buffers").fetchone()
        (index_bytes,) = con.execute("SELECT pg_relation_size(indexrelid) FROM pg_index i "
                                     "JOIN pg_am a ON a.oid = (SELECT relam FROM pg_class "
                                     "WHERE oid = i.indexrelid) WHERE a.amname = 'hash' AND "
                                     "i.indrelid = 'voice_cdrs'::regclass").fetchone()
    number, unit = re.fullmatch(r"(\d+)([kMG]B)", shown).groups()
    assert metadata["shared_buffers_mb"].value == int(number) * {"kB": 1 / 1024, "MB": 1,
                                                                  "GB": 1024}[unit]
    assert index_bytes > 0 and metadata["id_index_mb"].value == round(index_bytes / 2**20, 1)
    assert not [e for e in instance.all_logs(result.run_id)
                if "shared_buffers" in (e.user_message or "")]  # a small index fits


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_each_load_warns_while_the_id_index_outgrows_shared_buffers(defs, instance, drop_dir,
                                                                 monkeypatch):
    real = PostgresWarehouse.id_index_fit

    def grown(self, table: str, id_column: str) -> CacheFit:  # as after years of history
        fit = real(self, table, id_column)
        return dataclasses.replace(fit, index_bytes=fit.cache_bytes + 2**20)

    monkeypatch.setattr(PostgresWarehouse, "id_index_fit", grown)
    write_day(drop_dir, DAY, rows_per_file=20)
    result = run_day(defs, instance, DAY)
    assert result.success  # a warning, not a failure
    warnings = [e.user_message for e in instance.all_logs(result.run_id)
                if e.level == logging.WARNING and "shared_buffers" in (e.user_message or "")]
    assert len(warnings) == 2  # voice and verification, each naming its index
    assert any("voice_cdrs_call_id_hash" in w and "has outgrown" in w for w in warnings)
    assert any("verification_cdrs_verification_id_hash" in w for w in warnings)


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_an_id_index_as_large_as_its_cache_fits_and_a_missing_one_is_not_reported(
        warehouse_url):
    warehouse = open_warehouse(warehouse_url)
    warehouse.ensure_tables()
    fit = warehouse.id_index_fit("voice_cdrs", "call_id")
    assert fit is not None and fit.cache == "shared_buffers"
    assert not dataclasses.replace(fit, index_bytes=fit.cache_bytes).outgrown
    assert dataclasses.replace(fit, index_bytes=fit.cache_bytes + 1).outgrown
    warehouse.query("DROP INDEX voice_cdrs_call_id_hash")
    assert warehouse.id_index_fit("voice_cdrs", "call_id") is None


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_duckdb_has_no_id_index_to_report(defs, instance, drop_dir):
    write_day(drop_dir, DAY, rows_per_file=5)
    assert run_day(defs, instance, DAY).success
    metadata = instance.get_latest_materialization_event(
        dg.AssetKey("voice_cdrs")).asset_materialization.metadata
    assert "id_index_mb" not in metadata and metadata["rows_loaded"].value > 0

"""The benchmarks stay working: both run at a small size and report what the README quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_ingest_benchmark_compares_each_warehouse_with_its_own_loader(warehouse_url):
    report = run("ingest.py", "--rows", "20000", "--warehouse", "all", "--bad-every", "5000",
                 "--dup-every", "5000", "--postgres-url", warehouse_url, "--rounds", "3")
    assert (report["bad_lines"], report["duplicate_ids"]) == (4, 4)
    for engine in ("duckdb", "postgresql"):  # the round of the median ratio is reported
        ratios = report[engine]["load_ratio_each_round"]
        assert len(ratios) == 3
        assert report[engine]["load_ratio_to_baseline"] == sorted(ratios)[1]
    baselines = {"duckdb": report["duckdb_read_csv_typed_store_rejects_seconds"],
                 "postgresql": report["postgresql_copy_seconds"],
                 "iceberg": report["pyiceberg_append_seconds"]}
    for engine, baseline in baselines.items():
        figures = report[engine]
        assert figures["rows"] == 20000
        assert (figures["rows_loaded"], figures["rows_rejected"]) == (20000 - 8, 8)
        assert set(figures["seconds"]) == {"read_and_validate_only", "load_day", "reconcile"}
        cpu = figures["load_day_cpu_seconds"]  # the machine's busy time includes this process
        assert 0 < cpu["process"] <= cpu.get("machine", cpu["process"]) * 1.1 + 0.1
        # the figures README quotes are the ones measured, not made up: they agree
        assert figures["load_ratio_to_baseline"] == pytest.approx(
            figures["seconds"]["load_day"] / baseline, rel=0.05)
        assert figures["rows_per_second"] == pytest.approx(
            20000 / figures["seconds"]["load_day"], rel=0.01)
        assert 50 < figures["peak_rss_mb"] < 4096
    for engine in ("duckdb", "postgresql"):  # the measure: a Dagster run's step
        rounds = report[engine]["dagster_asset_materialize_each_round"]
        assert len(rounds) == 3
        for step in rounds:  # each against the baseline measured just before it
            assert step["whole_process_seconds"] > step["load_step_seconds"] > 0
            assert step["baseline_seconds"] > 0
            assert step["load_step_ratio_to_baseline"] == pytest.approx(
                step["load_step_seconds"] / step["baseline_seconds"], rel=0.05)
        ratios = sorted(s["load_step_ratio_to_baseline"] for s in rounds)
        assert report[engine]["dagster_asset_materialize"][
            "load_step_ratio_to_baseline"] == ratios[1]


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_floor_benchmark_sends_the_loaded_rows_to_each_table_shape(warehouse_url):
    report = run("postgres_floor.py", "--rows", "5000", "--rounds", "2",
                 "--postgres-url", warehouse_url)
    assert report["rows"] == 5000
    indexes = {variant: " ".join(found) for variant, found in report["indexes"].items()}
    assert "USING hash (call_id)" in indexes["as the warehouse"]
    assert "brin (cdr_date)" in indexes["without the id index"]
    assert "call_id" not in indexes["without the id index"]
    assert "btree (call_id)" in indexes["id index built after"]
    for variant, seconds in report["seconds_each_round"].items():
        assert len(seconds) == 2 and all(s > 0 for s in seconds)
        assert report["median_seconds"][variant] == pytest.approx(sum(seconds) / 2)
    assert all(len(cpu) == 2 for cpu in report["client_cpu_seconds_each_round"].values())


def test_backfill_benchmark_loads_every_day_through_the_dagster_cli():
    report = run("backfill.py", "--days", "3", "--rows", "500")
    assert report["1_runs"] == {**report["1_runs"], "warehouse_days": 3,
                                "warehouse_rows": 1500, "every_file_balances": True}


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_backfill_benchmark_runs_days_in_parallel_on_iceberg(warehouse_url):
    report = run("backfill.py", "--days", "4", "--rows", "300", "--warehouse", "iceberg",
                 "--runs", "1", "2", "--postgres-url", warehouse_url)
    for runs in ("1_runs", "2_runs"):
        assert report[runs] == {**report[runs], "warehouse_days": 4, "warehouse_rows": 1200,
                                "every_file_balances": True}


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_backfill_benchmark_keeps_dagsters_events_in_postgresql_as_production_does(
        warehouse_url):
    report = run("backfill.py", "--days", "2", "--rows", "300", "--instance", "postgresql",
                 "--postgres-url", warehouse_url)
    assert report["instance"] == "postgresql"
    assert report["1_runs"] == {**report["1_runs"], "warehouse_days": 2, "warehouse_rows": 600,
                                "every_file_balances": True}


@pytest.mark.parametrize("warehouse_url", ["duckdb", "postgres"], indirect=True)
def test_history_benchmark_finds_a_late_copy_among_the_days_loaded(warehouse_url):
    engine = "duckdb" if warehouse_url.startswith("duckdb") else "postgresql"
    report = run("history.py", "--days", "3", "--rows", "2000", "--warehouse", engine,
                 "--postgres-url", warehouse_url)
    assert len(report["seconds_each_day"]) == 3
    assert report["late_copy_rejected"] and report["every_load_balances"]


def test_broken_lines_benchmark_loads_each_file_with_its_broken_lines_accounted_for():
    report = run("broken_lines.py", "--rows", "20000", "--broken", "5")
    rejected = report["none"]["rows_rejected"]
    assert {how: (figures["broken_lines"], figures["rows"], figures["rows_rejected"])
            for how, figures in report.items()} == {
        "none": (0, 20000, rejected), "cut": (5, 20000, rejected + 5),
        "quote": (5, 20000, rejected),  # a quote inside a field is a letter: loaded
        "trailing": (20000, 20000, 20000)}  # a field too many on every line

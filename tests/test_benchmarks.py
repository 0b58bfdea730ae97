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
def test_ingest_benchmark_compares_both_warehouses_with_duckdb_read_csv(warehouse_url):
    report = run("ingest.py", "--rows", "20000", "--warehouse", "both",
                 "--postgres-url", warehouse_url)
    for engine in ("duckdb", "postgresql"):
        figures = report[engine]
        assert figures["rows"] == figures["rows_loaded"] + figures["rows_rejected"] == 20000
        assert set(figures["seconds"]) == {"read_and_validate_only", "load_day", "reconcile"}
        # the figures README quotes are the ones measured, not made up: they agree
        assert figures["end_to_end_seconds"] == pytest.approx(
            figures["seconds"]["load_day"] + figures["seconds"]["reconcile"], abs=0.002)
        assert figures["ratio_to_duckdb_read_csv"] == pytest.approx(
            figures["end_to_end_seconds"] / report["duckdb_read_csv_seconds"], rel=0.05)
        assert figures["rows_per_second"] == pytest.approx(
            20000 / figures["end_to_end_seconds"], rel=0.01)
        assert 50 < figures["peak_rss_mb"] < 4096
    assert report["postgresql_to_duckdb_load_ratio"] == pytest.approx(
        report["postgresql"]["seconds"]["load_day"] / report["duckdb"]["seconds"]["load_day"],
        abs=0.01)


def test_backfill_benchmark_loads_every_day_through_the_dagster_cli():
    report = run("backfill.py", "--days", "3", "--rows", "500")
    assert report["warehouse_days"] == 3 and report["warehouse_rows"] == 1500
    assert report["every_file_balances"] is True

"""A backfill launched as the UI launches it, under a real `dg dev`, on Iceberg: the daemon
splits it into runs of CDR_DAYS_PER_RUN days, runs them side by side within the pool limit, and
every day lands, read back through pyiceberg."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from test_daemon import gql, runs
from test_iceberg import pyiceberg_table

from cdr_workflow.demo import write_day
from cdr_workflow.devserver import dagster_dev

DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=n) for n in range(4)]
DAYS_PER_RUN = 2
SETTLE_TIMEOUT = 420
LAUNCH = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message } } }
"""
VOICE_ASSETS = ["voice_file", "voice_cdrs", "voice_reconciliation", "voice_kpis",
                "voice_signals"]


def test_a_backfill_on_iceberg_runs_its_days_in_parallel_runs(tmp_path: Path, iceberg_url):
    home, drop = tmp_path / "home", tmp_path / "drop"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 2\n")
    for day in DAYS:
        write_day(drop, day, rows_per_file=200, with_faults=False)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CDR_")},
           "DAGSTER_HOME": str(home), "CDR_DROP_DIR": str(drop),
           "CDR_WAREHOUSE_URL": iceberg_url, "CDR_REPORTS_DIR": str(tmp_path / "reports"),
           "CDR_START_DATE": DAYS[0].isoformat(), "CDR_DAYS_PER_RUN": str(DAYS_PER_RUN),
           "CDR_SENSOR_STATUS": "stopped"}

    with (tmp_path / "dg-dev.log").open("w") as log, dagster_dev(env, log) as url:
        launched = gql(url, LAUNCH, {"params": {
            "assetSelection": [{"path": [name]} for name in VOICE_ASSETS],
            "partitionNames": [d.isoformat() for d in DAYS]}})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill = launched["backfillId"]
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            mine = [r for r in runs(url) if r["tags"].get("dagster/backfill") == backfill]
            if len(mine) == len(DAYS) // DAYS_PER_RUN and all(
                    r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in mine):
                break
            assert time.monotonic() < deadline, [(r["status"], r["tags"]) for r in mine]
            time.sleep(3)

    assert [r["status"] for r in mine] == ["SUCCESS"] * len(mine)
    ranges = sorted((r["tags"]["dagster/asset_partition_range_start"],
                     r["tags"]["dagster/asset_partition_range_end"]) for r in mine)
    assert ranges == [(DAYS[0].isoformat(), DAYS[1].isoformat()),
                      (DAYS[2].isoformat(), DAYS[3].isoformat())]
    first, second = sorted(mine, key=lambda r: r["startTime"])
    assert second["startTime"] < first["endTime"], "the two runs did not overlap"

    ledger = pyiceberg_table(iceberg_url, "cdr_files").scan().to_arrow().to_pylist()
    days = {(r["cdr_date"], r["kind"]) for r in ledger}
    assert days == {(d, "voice") for d in DAYS}
    assert all(r["rows_read"] == r["rows_loaded"] + r["rows_rejected"] for r in ledger)
    stored = pyiceberg_table(iceberg_url, "voice_cdrs").scan(
        selected_fields=("cdr_date",)).to_arrow().column("cdr_date").to_pylist()
    assert {d: stored.count(d) for d in DAYS} == {
        d: sum(r["rows_loaded"] for r in ledger if r["cdr_date"] == d) for d in DAYS}

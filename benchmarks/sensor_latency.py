"""Sensor latency: how long from a file landing in the drop folder, while `dagster dev` runs,
to its day being loaded.

    python benchmarks/sensor_latency.py

Starts `dagster dev` on a free port with its own DAGSTER_HOME, drop folder and warehouse,
waits for the sensor's first tick, drops one day of demo files (written, then renamed into
place), and reports the seconds until both kinds' runs for that day have succeeded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from cdr_workflow.demo import write_day
from cdr_workflow.devserver import dagster_dev

TIMEOUT_SECONDS = 300


def _succeeded_kinds(instance: dg.DagsterInstance, day: dt.date) -> set[str]:
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    return {r.tags.get("cdr_kind") for r in runs
            if r.tags.get("dagster/partition") == day.isoformat()}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="cdr-sensor-"))
    home, drop, staging = root / "home", root / "drop", root / "staging"
    for folder in (home, drop):
        folder.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n"
                                       "concurrency:\n  pools:\n    default_limit: 1\n")
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CDR_DROP_DIR": str(drop),
           "CDR_WAREHOUSE_URL": f"duckdb:///{root / 'warehouse.duckdb'}",
           "CDR_REPORTS_DIR": str(root / "reports"),
           "CDR_START_DATE": (day - dt.timedelta(days=7)).isoformat()}
    with dagster_dev(env):
        time.sleep(35)  # let the sensor's first tick pass on the empty folder
        written = write_day(staging, day, rows_per_file=2000)
        landed = time.monotonic()
        for path in written:
            shutil.move(str(path), drop / path.name)
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.get() as instance:
            while _succeeded_kinds(instance, day) != {"verification", "voice"}:
                if time.monotonic() - landed > TIMEOUT_SECONDS:
                    sys.exit("the day was not loaded in time")
                time.sleep(1)
        print(json.dumps({"day": day.isoformat(), "files": len(written),
                          "seconds_from_drop_to_loaded": round(time.monotonic() - landed, 1)},
                         indent=2))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

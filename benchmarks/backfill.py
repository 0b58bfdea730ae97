"""Backfill benchmark: N days × R voice rows through `dagster asset materialize
--partition-range`, as a user runs it, timed wall to wall.

    python benchmarks/backfill.py --days 365 --rows 20000

The partition range runs as one run (the assets' single-run backfill policy), each day in its
own transaction. Prints JSON: days, rows, wall seconds, rows/s and what the warehouse holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

FIRST_DAY = dt.date(2025, 1, 1)


def write_days(drop: Path, days: int, rows: int) -> None:
    """One generated day, copied to every other day with its dates and ids rewritten."""
    from cdr_workflow.demo import write_voice_file

    template = write_voice_file(drop / "template.tmp", rows, FIRST_DAY).read_bytes()
    (drop / "template.tmp").unlink()
    for offset in range(days):
        day = FIRST_DAY + dt.timedelta(days=offset)
        data = template.replace(FIRST_DAY.isoformat().encode(), day.isoformat().encode())
        data = data.replace(FIRST_DAY.strftime("%Y%m%d").encode(), day.strftime("%Y%m%d").encode())
        (drop / f"voice_{day.isoformat()}.csv").write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cdr-backfill-"))
    drop, home = workdir / "drop", workdir / "home"
    for folder in (drop, home):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (workdir / "warehouse.duckdb").unlink(missing_ok=True)
    write_days(drop, args.days, args.rows)
    last = FIRST_DAY + dt.timedelta(days=args.days - 1)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CDR_DROP_DIR": str(drop),
           "CDR_WAREHOUSE_URL": f"duckdb:///{workdir / 'warehouse.duckdb'}",
           "CDR_REPORTS_DIR": str(workdir / "reports"),
           "CDR_START_DATE": FIRST_DAY.isoformat()}
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
               "-m", "cdr_workflow.definitions", "--select", "group:voice",
               "--partition-range", f"{FIRST_DAY}...{last}"]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-4000:])
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        days, rows = con.execute(
            "SELECT COUNT(DISTINCT cdr_date), COUNT(*) FROM voice_cdrs").fetchone()
        (balanced,) = con.execute(
            "SELECT bool_and(rows_read = rows_loaded + rows_rejected) FROM cdr_files").fetchone()
    print(json.dumps({"days": args.days, "rows_per_day": args.rows, "wall_seconds": round(wall, 1),
                      "rows_per_second": round(args.days * args.rows / wall),
                      "warehouse_days": days, "warehouse_rows": rows,
                      "every_file_balances": balanced}, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()

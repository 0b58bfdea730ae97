"""History benchmark: does a day cost the same with many days already loaded? Loads `--days`
days of `--rows` voice rows in order through `load_day` (the pipeline's load: read, validate,
load, duplicates against every other day, ledger, money check), then loads the last day again
with one call of the first day re-delivered in it, which the load must find and hold. After
each load, the day's checks (`read_day_facts`: the reconciliation's reads of the day, its
count of ids present twice included) are timed too.

    python benchmarks/history.py --days 12 --rows 1000000 --warehouse postgresql
    python benchmarks/history.py --days 12 --rows 1000000 --warehouse duckdb

Ids are random UUIDs, the shape of Sinch's call ids (see `ingest.inject_faults`), a bad line
every 10,000 and a duplicate every 50,000, as in the ingest benchmark. Prints JSON: each day's
seconds, the last day against the first, and the re-load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from ingest import DEFAULT_POSTGRES_URL, _drop_postgres, _fresh_postgres, inject_faults

FIRST_DAY = dt.date(2026, 10, 1)


def write_days(drop: Path, days: int, rows: int) -> list[Path]:
    """One generated day copied to every day, dates rewritten, each with ids of its own."""
    from cdr_workflow.demo import write_voice_file

    template = write_voice_file(drop / "template.tmp", rows, FIRST_DAY).read_bytes()
    (drop / "template.tmp").unlink()
    paths = []
    for offset in range(days):
        day = FIRST_DAY + dt.timedelta(days=offset)
        path = drop / f"voice_{day.isoformat()}.csv"
        path.write_bytes(template.replace(FIRST_DAY.isoformat().encode(),
                                          day.isoformat().encode()))
        inject_faults(path, 10_000, 50_000, sinch_ids=True, seed=day.toordinal())
        paths.append(path)
    return paths


def redeliver_first_call(first: Path, last: Path) -> None:
    """The last day's first call replaced by the first day's: a late copy."""
    original = first.read_bytes().split(b"\n", 2)[1].split(b";", 1)[0]
    header, line, rest = last.read_bytes().split(b"\n", 2)
    last.write_bytes(b"\n".join([header, original + b";" + line.split(b";", 1)[1], rest]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--warehouse", choices=["duckdb", "postgresql"], default="duckdb")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()

    from cdr_workflow.day_facts import read_day_facts
    from cdr_workflow.kinds import VOICE
    from cdr_workflow.load import load_day
    from cdr_workflow.sources import DEFAULT_FILE_PATTERN
    from cdr_workflow.sources.local import LocalSource
    from cdr_workflow.warehouse import open_warehouse

    workdir = Path(tempfile.mkdtemp(prefix="cdr-history-"))
    paths = write_days(workdir / "drop", args.days, args.rows)
    database = f"cdr_history_{os.getpid()}"
    url = (f"duckdb:///{workdir / 'warehouse.duckdb'}" if args.warehouse == "duckdb"
           else _fresh_postgres(args.postgres_url, database))
    try:
        warehouse = open_warehouse(url)
        warehouse.ensure_tables()
        source = LocalSource(workdir / "drop", re.compile(DEFAULT_FILE_PATTERN))

        checks: list[float] = []

        def load(day: dt.date) -> tuple[float, bool, int]:
            start = time.perf_counter()
            result = load_day(source, warehouse, VOICE, day, "benchmark")
            seconds = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            read_day_facts(warehouse, VOICE, day, FIRST_DAY)
            checks.append(round(time.perf_counter() - start, 2))
            return (seconds, result.rows_read == result.rows_loaded + result.rows_rejected,
                    result.rows_rejected)

        days = [FIRST_DAY + dt.timedelta(days=n) for n in range(args.days)]
        loads = [load(day) for day in days]
        redeliver_first_call(paths[0], paths[-1])
        reload = load(days[-1])
    finally:
        if args.warehouse == "postgresql":
            _drop_postgres(args.postgres_url, database)
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = [s for s, _, _ in loads]
    print(json.dumps({
        "warehouse": args.warehouse, "days": args.days, "rows_per_day": args.rows,
        "seconds_each_day": seconds,
        "last_day_to_first": round(seconds[-1] / seconds[0], 2),
        "checks_seconds_each_day": checks[:-1],
        "checks_last_day_to_first": round(checks[-2] / checks[0], 2),
        "reload_of_last_day_with_a_late_copy_seconds": reload[0],
        "late_copy_rejected": reload[2] == loads[-1][2] + 1,
        "every_load_balances": all(b for _, b, _ in [*loads, reload])}, indent=2))


if __name__ == "__main__":
    main()

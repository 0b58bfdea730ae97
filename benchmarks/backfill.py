"""Backfill benchmark: N days × R voice rows through `dagster asset materialize
--partition-range`, as a user runs it, timed wall to wall.

    python benchmarks/backfill.py --days 365 --rows 20000
    python benchmarks/backfill.py --days 30 --warehouse postgresql --runs 1 3
    python benchmarks/backfill.py --days 30 --warehouse iceberg --runs 1 3
    python benchmarks/backfill.py --days 365 --instance postgresql

`--instance postgresql` keeps Dagster's own runs and events in PostgreSQL, as the production
instance (docker/dagster.yaml) does; the default is the SQLite instance `make run` uses.

One run holds the whole range, each day in its own transaction; `--runs K` splits the range
into K runs started at once, as a backfill does on PostgreSQL and Iceberg (runs of
CDR_DAYS_PER_RUN days, as many at once as the cdr_warehouse pool allows). Prints JSON: wall
seconds, rows/s and what the warehouse holds, per figure of `--runs`.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def ranges(days: int, runs: int) -> list[tuple[dt.date, dt.date]]:
    """The days split into `runs` consecutive ranges, as a multi-run backfill splits them."""
    size = -(-days // runs)
    return [(FIRST_DAY + dt.timedelta(days=start),
             FIRST_DAY + dt.timedelta(days=min(start + size, days) - 1))
            for start in range(0, days, size)]


def backfill(env: dict[str, str], days: int, runs: int) -> float:
    """`dagster asset materialize --partition-range` per range, all started at once (what the
    daemon does with a backfill's runs when the pool allows them); wall seconds to the last."""
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
               "-m", "cdr_workflow.definitions", "--select", "group:voice"]
    start = time.perf_counter()
    children = [subprocess.Popen([*command, "--partition-range", f"{first}...{last}"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for first, last in ranges(days, runs)]
    failures = [child.communicate()[1] for child in children]
    wall = time.perf_counter() - start
    for child, stderr in zip(children, failures, strict=True):
        if child.returncode != 0:
            sys.exit(stderr[-4000:])
    return wall


@contextmanager
def fresh_database(postgres_url: str, purpose: str) -> Iterator[str]:
    """A new PostgreSQL database for this run, dropped afterwards."""
    import psycopg

    name = f"cdr_{purpose}_{os.getpid()}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def instance_storage(kind: str, postgres_url: str) -> Iterator[str]:
    """The dagster.yaml lines for the instance's storage: SQLite files (none) or PostgreSQL."""
    if kind == "sqlite":
        yield ""
        return
    with fresh_database(postgres_url, "instance") as url:
        # dagster-postgres's driver (SQLAlchemy 2.1 would pick psycopg 3 for postgresql://)
        psycopg2_url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
        yield f"storage:\n  postgres:\n    postgres_url: {psycopg2_url}\n"


@contextmanager
def warehouse_url(kind: str, workdir: Path, postgres_url: str) -> Iterator[str]:
    if kind == "duckdb":
        (workdir / "warehouse.duckdb").unlink(missing_ok=True)
        yield f"duckdb:///{workdir / 'warehouse.duckdb'}"
    elif kind == "postgresql":
        with fresh_database(postgres_url, "backfill") as url:
            yield url
    else:
        from local_lake import local_lake

        with local_lake(postgres_url, "backfill") as catalog:
            yield f"iceberg://{catalog}/backfill"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--warehouse", choices=["duckdb", "postgresql", "iceberg"],
                        default="duckdb")
    parser.add_argument("--runs", type=int, nargs="+", default=[1],
                        help="backfill once per figure, in that many parallel runs")
    parser.add_argument("--instance", choices=["sqlite", "postgresql"], default="sqlite",
                        help="where Dagster keeps its runs and events")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cdr-backfill-"))
    drop = workdir / "drop"
    shutil.rmtree(drop, ignore_errors=True)
    drop.mkdir(parents=True)
    write_days(drop, args.days, args.rows)
    report: dict[str, object] = {"days": args.days, "rows_per_day": args.rows,
                                 "warehouse": args.warehouse, "instance": args.instance}
    for runs in args.runs:
        home = workdir / f"home-{runs}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        with instance_storage(args.instance, args.postgres_url) as storage, \
                warehouse_url(args.warehouse, workdir, args.postgres_url) as url:
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + storage)
            create_instance(home)
            env = {**os.environ, "DAGSTER_HOME": str(home), "CDR_DROP_DIR": str(drop),
                   "CDR_WAREHOUSE_URL": url, "CDR_REPORTS_DIR": str(workdir / "reports"),
                   "CDR_START_DATE": FIRST_DAY.isoformat(),
                   "CDR_DAYS_PER_RUN": "0"}  # each range one run: the CLI's way; split here
            wall = backfill(env, args.days, runs)
            report[f"{runs}_runs"] = {"wall_seconds": round(wall, 1),
                                      "rows_per_second": round(args.days * args.rows / wall),
                                      **held(url)}
    print(json.dumps(report, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir)


def create_instance(home: Path) -> None:
    """Runs started at once on a new instance would all create its storage (and collide on
    its schema version): create it first, as a running deployment has."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()


def held(url: str) -> dict[str, object]:
    """What the warehouse holds afterwards."""
    from cdr_workflow.warehouse import open_warehouse

    warehouse = open_warehouse(url)
    ((days, rows),) = warehouse.query(
        "SELECT COUNT(DISTINCT cdr_date), COUNT(*) FROM voice_cdrs")
    ((files, balanced),) = warehouse.query(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE rows_read = rows_loaded + rows_rejected) "
        "FROM cdr_files")
    return {"warehouse_days": int(days), "warehouse_rows": int(rows),
            "every_file_balances": files == balanced}


if __name__ == "__main__":
    main()

"""Ingest benchmark: the pipeline's own read → validate → load → reconcile for one day,
against DuckDB's own CSV loader on the same file, measured in the same run.

    python benchmarks/ingest.py --rows 1000000
    python benchmarks/ingest.py --rows 1000000 --warehouse both     # PostgreSQL vs DuckDB
    python benchmarks/ingest.py --file path/to/voice_2026-11-21.csv

Prints one JSON object: rows, seconds per stage, rows/s, peak RSS of the pipeline process and
the ratio of the pipeline's end-to-end time to DuckDB's `CREATE TABLE AS SELECT * FROM
read_csv(...)`. Each measurement runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty
from typing import Any

DAY = dt.date(2026, 11, 21)
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pipeline(path: str, kind: str, warehouse_url: str, out: Any) -> None:
    from cdr_workflow.day_facts import read_day_facts, store_report
    from cdr_workflow.kinds import KINDS
    from cdr_workflow.load import load_day
    from cdr_workflow.reader import read_cdr_file
    from cdr_workflow.reconcile import DailyReport
    from cdr_workflow.sources import DEFAULT_FILE_PATTERN
    from cdr_workflow.sources.local import LocalSource
    from cdr_workflow.warehouse import open_warehouse

    source = LocalSource(Path(path).parent, re.compile(DEFAULT_FILE_PATTERN))
    warehouse = open_warehouse(warehouse_url)
    warehouse.ensure_tables()
    stages: dict[str, float] = {}

    start = time.perf_counter()
    rows = rejects = 0
    with open(path, "rb") as stream:
        for chunk in read_cdr_file(stream, Path(path).name, kind):
            rows += chunk.rows.num_rows
            rejects += len(chunk.rejects)
    stages["read_and_validate_only"] = time.perf_counter() - start

    start = time.perf_counter()
    result = load_day(source, warehouse, KINDS[kind], DAY, "benchmark")
    stages["load_day"] = time.perf_counter() - start

    start = time.perf_counter()
    report = DailyReport(read_day_facts(warehouse, KINDS[kind], DAY, DAY), 0.05)
    store_report(warehouse, report)
    report.markdown()
    stages["reconcile"] = time.perf_counter() - start
    assert result.rows_read == result.rows_loaded + result.rows_rejected == rows + rejects
    out.put({"stages": stages, "rows_read": result.rows_read,
             "rows_loaded": result.rows_loaded, "rows_rejected": result.rows_rejected,
             "peak_rss_mb": round(_peak_rss_mb(), 1)})


def _duckdb_baseline(path: str, db: str, out: Any) -> None:
    import duckdb

    start = time.perf_counter()
    with duckdb.connect(db) as con:
        con.execute("CREATE TABLE baseline AS SELECT * FROM read_csv(?, delim=';', header=true)",
                    [path])
    out.put({"seconds": time.perf_counter() - start, "peak_rss_mb": round(_peak_rss_mb(), 1)})


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    while True:  # a child that dies (say, out of memory) must not leave us waiting forever
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not process.is_alive():
                sys.exit(f"{target.__name__} failed (exit code {process.exitcode})")
    process.join()
    return result


def _fresh_postgres(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        con.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _measure(path: Path, kind: str, warehouse_url: str, baseline: float) -> dict[str, Any]:
    pipeline = _in_child(_pipeline, str(path), kind, warehouse_url)
    end_to_end = pipeline["stages"]["load_day"] + pipeline["stages"]["reconcile"]
    return {
        "rows": pipeline["rows_read"],
        "rows_loaded": pipeline["rows_loaded"],
        "rows_rejected": pipeline["rows_rejected"],
        "seconds": {k: round(v, 3) for k, v in pipeline["stages"].items()},
        "end_to_end_seconds": round(end_to_end, 3),
        "rows_per_second": round(pipeline["rows_read"] / end_to_end),
        "peak_rss_mb": pipeline["peak_rss_mb"],
        "ratio_to_duckdb_read_csv": round(end_to_end / baseline, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--file", type=Path, help="benchmark this file instead of generating one")
    parser.add_argument("--kind", choices=["voice", "verification"], default="voice")
    parser.add_argument("--warehouse", choices=["duckdb", "postgresql", "both"],
                        default="duckdb")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cdr-bench-"))
    drop = workdir / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    if args.file:
        path = drop / f"{args.kind}_{DAY.isoformat()}{''.join(args.file.suffixes)}"
        shutil.copy(args.file, path)
    else:
        from cdr_workflow.demo import write_voice_file

        path = drop / f"voice_{DAY.isoformat()}.csv"
        if not path.exists() or args.workdir is None:
            write_voice_file(path, args.rows, DAY)

    (workdir / "baseline.duckdb").unlink(missing_ok=True)
    baseline = _in_child(_duckdb_baseline, str(path), str(workdir / "baseline.duckdb"))
    report: dict[str, Any] = {"file": path.name, "file_mb": round(path.stat().st_size / 2**20, 1),
                              "duckdb_read_csv_seconds": round(baseline["seconds"], 3)}
    if args.warehouse in ("duckdb", "both"):
        (workdir / "warehouse.duckdb").unlink(missing_ok=True)
        report["duckdb"] = _measure(path, args.kind, f"duckdb:///{workdir / 'warehouse.duckdb'}",
                                    baseline["seconds"])
    if args.warehouse in ("postgresql", "both"):
        name = f"cdr_benchmark_{os.getpid()}"
        url = _fresh_postgres(args.postgres_url, name)
        try:
            report["postgresql"] = _measure(path, args.kind, url, baseline["seconds"])
        finally:
            _drop_postgres(args.postgres_url, name)
    if args.warehouse == "both":
        report["postgresql_to_duckdb_load_ratio"] = round(
            report["postgresql"]["seconds"]["load_day"] / report["duckdb"]["seconds"]["load_day"],
            2)
    print(json.dumps(report, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()

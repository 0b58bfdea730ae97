"""Ingest benchmark: the pipeline's own load of one day against each warehouse's own loader on
the same file, with bad lines and duplicate ids in it, all measured in the same run.

    python benchmarks/ingest.py --rows 1000000 --warehouse both
    python benchmarks/ingest.py --file path/to/voice_2026-11-21.csv --warehouse both
    python benchmarks/ingest.py --rows 1000000 --warehouse all   # and Iceberg (local S3 + catalog)

The file (generated, or given) gets a bad line every `--bad-every` lines (a wrong amount,
result, duration, time or a missing id: values PostgreSQL's COPY into text columns still
takes) and a duplicate id every `--dup-every` lines. A generated file's ids are random UUIDs, as
Sinch's call ids are (`--ids sequential`: the demo's numbered ids, which flatter an index on
them). Baselines: DuckDB's typed `read_csv(...,
columns={typed}, store_rejects=true)` into a table of a fresh database file (and, for the
record, of an in-memory database), and PostgreSQL's `COPY ... FROM STDIN (FORMAT csv)` of the
same bytes into text columns. The pipeline: `load_day` (read, validate, load, duplicates,
ledger, independent money check) and the reconciliation, in a fresh process per warehouse
after a read pass of the file; and `dagster asset materialize --select voice_cdrs` as a user
runs it, on DuckDB and PostgreSQL, its load step (the issue's measure: a run's process has had
no read pass, and its step also runs the day's checks) and the whole process. Prints one
JSON object with the ratios, and the CPU time of each `load_day`: its own process's and the
machine's (the PostgreSQL server's work shows only in the second).

The machine's speed drifts (±30% within minutes here), so `--rounds N` measures each warehouse
N times, its baseline right before `load_day` and again right before the Dagster run each time,
and reports the round of the median `load_day` ratio and the round of the median Dagster step
ratio (every round's listed, each step with the baseline it was compared with).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty
from random import Random
from typing import Any
from uuid import UUID

DAY = dt.date(2026, 11, 21)
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's `ru_maxrss` keeps the peak of the process
    that forked it (the parent, which holds the whole file while it writes the faults in), so
    the kernel's high-water mark of this process image is read instead."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _machine_busy_seconds() -> float | None:
    """CPU time all cores have spent busy since boot (Linux): a load on PostgreSQL works in
    the server's processes as well as in this one, and on a shared machine wall time drifts
    more than the work done."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]  # not steal nor guest
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


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

    start, process, machine = time.perf_counter(), time.process_time(), _machine_busy_seconds()
    result = load_day(source, warehouse, KINDS[kind], DAY, "benchmark")
    stages["load_day"] = time.perf_counter() - start
    cpu = {"process": time.process_time() - process}  # every thread of this process
    if machine is not None:
        cpu["machine"] = _machine_busy_seconds() - machine  # this process, the server, the rest

    start = time.perf_counter()
    report = DailyReport(read_day_facts(warehouse, KINDS[kind], DAY, DAY), 0.05)
    store_report(warehouse, report)
    report.markdown()
    stages["reconcile"] = time.perf_counter() - start
    assert result.rows_read == result.rows_loaded + result.rows_rejected == rows + rejects
    out.put({"stages": stages, "load_day_cpu": cpu, "rows_read": result.rows_read,
             "rows_loaded": result.rows_loaded, "rows_rejected": result.rows_rejected,
             "peak_rss_mb": round(_peak_rss_mb(), 1)})


def _duckdb_baseline(path: str, db: str, out: Any) -> None:
    """DuckDB's own typed load with its own quarantine."""
    import duckdb

    from cdr_workflow.layouts import LAYOUTS
    from cdr_workflow.warehouse.tables import sql_type

    types = ", ".join(f"'{f.sinch_name}': '{sql_type(f.type.arrow)}'"
                      for f in LAYOUTS["phone_terminated"].fields)
    start = time.perf_counter()
    with duckdb.connect(db) as con:
        con.execute(f"CREATE TABLE baseline AS SELECT * FROM read_csv(?, delim=';', header=true, "
                    f"columns={{{types}}}, store_rejects=true, auto_detect=false)", [path])
        (rejected,) = con.execute("SELECT COUNT(DISTINCT line) FROM reject_errors").fetchone()
    out.put({"seconds": time.perf_counter() - start, "rejected": rejected,
             "peak_rss_mb": round(_peak_rss_mb(), 1)})


def _iceberg_baseline(path: str, catalog: str, out: Any) -> None:
    """pyiceberg's own write of the same file: DuckDB's typed read (bad lines skipped) into
    Arrow, appended to a table partitioned by day in the same catalog and object store."""
    import duckdb
    import pyarrow as pa
    from pyiceberg.catalog import load_catalog
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.utils.config import Config

    from cdr_workflow.layouts import LAYOUTS
    from cdr_workflow.warehouse.tables import sql_type

    types = ", ".join(f"'{f.sinch_name}': '{sql_type(f.type.arrow)}'"
                      for f in LAYOUTS["phone_terminated"].fields)
    lake = load_catalog(catalog, **Config().get_catalog_config(catalog))
    lake.create_namespace_if_not_exists("baseline")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        read = (f"SELECT *, DATE '{DAY}' AS cdr_date FROM read_csv('{path}', delim=';', "
                f"header=true, columns={{{types}}}, ignore_errors=true, auto_detect=false)")
        schema = con.sql(read + " LIMIT 0").to_arrow_table().schema
        schema = pa.schema([f.remove_metadata() for f in schema])
        table = lake.create_table(("baseline", f"voice_{os.getpid()}"), schema=schema)
        with table.update_spec() as spec:  # made before the clock starts, as the pipeline's
            spec.add_field("cdr_date", IdentityTransform(), "cdr_date")
        start = time.perf_counter()
        rows = con.sql(read).to_arrow_table()
    table.append(rows.cast(schema))
    out.put({"seconds": time.perf_counter() - start, "rows": rows.num_rows})


def _postgres_baseline(path: str, url: str, out: Any) -> None:
    """PostgreSQL's own COPY of the same bytes into text columns."""
    import psycopg

    from cdr_workflow.layouts import LAYOUTS

    columns = ", ".join(f'"{f.sinch_name}" text' for f in LAYOUTS["phone_terminated"].fields)
    with psycopg.connect(url) as con:
        con.execute(f"CREATE TABLE copy_baseline ({columns})")
        start = time.perf_counter()
        with con.cursor() as cur, cur.copy("COPY copy_baseline FROM STDIN "
                                           "(FORMAT csv, DELIMITER ';', HEADER true)") as copy, \
                open(path, "rb") as f:
            while data := f.read(1 << 20):
                copy.write(data)
        con.commit()
        seconds = time.perf_counter() - start
    out.put({"seconds": seconds})


FAULTS = (("Amount", b"1.2345678"), ("Result", b"MAYBE"), ("Duration", b"-5"),
          ("CallTime", b"yesterday"), ("CallId", b""))


def inject_faults(path: Path, bad_every: int, dup_every: int, sinch_ids: bool = False,
                  seed: int = DAY.toordinal()) -> tuple[int, int]:
    """Rewrite a file (with a header) with bad lines and duplicate ids; returns how many of
    each. A duplicate copies the id of the line 1000 lines up. `sinch_ids`: every id becomes
    a random UUID with a suffix first, the shape of Sinch's call ids (its callback docs:
    `822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257`): a file in call order holds them in no order,
    which is what a warehouse's index on them meets."""
    lines = path.read_bytes().split(b"\n")
    position = {name.decode(): i for i, name in enumerate(lines[0].split(b";"))}
    bad = duplicates = 0
    random = Random(seed)
    for n in range(1, len(lines)):
        if not lines[n]:
            continue
        fields = lines[n].split(b";")
        if sinch_ids:
            uuid = UUID(int=random.getrandbits(128), version=4)
            fields[position["CallId"]] = f"{uuid}_{random.randrange(1000)}".encode()
        if n % bad_every == 0:
            name, value = FAULTS[bad % len(FAULTS)]
            fields[position[name]] = value
            bad += 1
        elif n % dup_every == dup_every // 2 and n > 1000:
            fields[position["CallId"]] = lines[n - 1000].split(b";")[position["CallId"]]
            duplicates += 1
        lines[n] = b";".join(fields)
    path.write_bytes(b"\n".join(lines))
    return bad, duplicates


def _materialize(path: Path, workdir: Path, warehouse_url: str, baseline: float
                 ) -> dict[str, float]:
    """`dagster asset materialize --select voice_cdrs` for the day, as a user runs it, into
    an empty warehouse: the whole process, and its load step as the run's step statistics
    record it, with the step's ratio to `baseline`, measured just before it (the machine's
    speed drifts within a round's minute). This is the issue's measure: a
    fresh process pays what `_pipeline`'s read pass warms (importing pandas and pandera,
    pandera's first run)."""
    home = workdir / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CDR_DROP_DIR": str(path.parent),
           "CDR_WAREHOUSE_URL": warehouse_url,
           "CDR_REPORTS_DIR": str(workdir / "reports"), "CDR_START_DATE": "2026-11-01"}
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
               "cdr_workflow.definitions", "--select", "voice_cdrs", "--partition", str(DAY)]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-4000:])
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_run_records()
        steps = instance.get_run_step_stats(run.dagster_run.run_id)
    step = max(steps, key=lambda s: (s.end_time or 0) - (s.start_time or 0))
    seconds = step.end_time - step.start_time
    return {"whole_process_seconds": round(wall, 3), "load_step_seconds": round(seconds, 3),
            "baseline_seconds": round(baseline, 3),
            "load_step_ratio_to_baseline": round(seconds / baseline, 2)}


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


Round = tuple[dict[str, Any], dict[str, Any]]  # (the baseline's result, the load's figures)


def _duckdb_round(path: Path, kind: str, workdir: Path, dagster: bool) -> Round:
    """DuckDB's own typed load, then ours; then (with `dagster`) DuckDB's again and Dagster's
    run of ours: each into a new database file, each ratio against the baseline measured just
    before it."""
    files = {name: workdir / f"{name}.duckdb" for name in ("baseline", "load", "materialize")}
    for file in files.values():
        file.unlink(missing_ok=True)
    baseline = _in_child(_duckdb_baseline, str(path), str(files["baseline"]))
    figures = _measure(path, kind, f"duckdb:///{files['load']}", baseline["seconds"])
    if dagster:
        files["baseline"].unlink()
        step_baseline = _in_child(_duckdb_baseline, str(path), str(files["baseline"]))
        figures["dagster_asset_materialize"] = _materialize(
            path, workdir, f"duckdb:///{files['materialize']}", step_baseline["seconds"])
    return baseline, figures


def _postgres_round(path: Path, kind: str, postgres_url: str, workdir: Path, dagster: bool
                    ) -> Round:
    """PostgreSQL's COPY, then our load; then (with `dagster`) COPY again and Dagster's run
    of our load: each into a new database, each ratio against the COPY just before it."""
    name = f"cdr_benchmark_{os.getpid()}"
    try:
        copy = _in_child(_postgres_baseline, str(path), _fresh_postgres(postgres_url, name))
        figures = _measure(path, kind, _fresh_postgres(postgres_url, name), copy["seconds"])
        if dagster:
            step_copy = _in_child(_postgres_baseline, str(path),
                                  _fresh_postgres(postgres_url, name))
            figures["dagster_asset_materialize"] = _materialize(
                path, workdir, _fresh_postgres(postgres_url, name), step_copy["seconds"])
        return copy, figures
    finally:
        _drop_postgres(postgres_url, name)


def _median_round(rounds: list[Round]) -> Round:
    """The round whose `load_day` ratio is the median (of an even number of rounds, the
    higher of the two middle ones: never the flattering one), with every round's ratio beside
    its figures. The Dagster step's figures are those of the round whose step ratio is the
    median, chosen the same way, each with its own round's baseline; every round's are
    listed."""
    def median(items: list, ratio: Any) -> Any:
        return sorted(items, key=ratio)[len(items) // 2]

    baseline, figures = median(rounds, lambda r: r[1]["load_ratio_to_baseline"])
    figures = {**figures,
               "load_ratio_each_round": [f["load_ratio_to_baseline"] for _, f in rounds],
               "baseline_seconds_each_round": [round(b["seconds"], 3) for b, _ in rounds]}
    steps = [f["dagster_asset_materialize"] for _, f in rounds
             if "dagster_asset_materialize" in f]
    if steps:
        figures["dagster_asset_materialize"] = median(
            steps, lambda s: s["load_step_ratio_to_baseline"])
        figures["dagster_asset_materialize_each_round"] = steps
    return baseline, figures


def _measure(path: Path, kind: str, warehouse_url: str, baseline: float) -> dict[str, Any]:
    pipeline = _in_child(_pipeline, str(path), kind, warehouse_url)
    load = pipeline["stages"]["load_day"]
    return {
        "rows": pipeline["rows_read"],
        "rows_loaded": pipeline["rows_loaded"],
        "rows_rejected": pipeline["rows_rejected"],
        "seconds": {k: round(v, 3) for k, v in pipeline["stages"].items()},
        "load_day_cpu_seconds": {k: round(v, 2) for k, v in pipeline["load_day_cpu"].items()},
        "rows_per_second": round(pipeline["rows_read"] / load),
        "peak_rss_mb": pipeline["peak_rss_mb"],
        "load_ratio_to_baseline": round(load / baseline, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--file", type=Path, help="benchmark this file instead of generating one")
    parser.add_argument("--kind", choices=["voice", "verification"], default="voice")
    parser.add_argument("--warehouse", choices=["duckdb", "postgresql", "iceberg", "both",
                                                "all"], default="duckdb",
                        help="both: DuckDB and PostgreSQL; all: and Iceberg")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--ids", choices=["sinch", "sequential"], default="sinch",
                        help="a generated file's ids: random UUIDs as Sinch's, or the demo's "
                        "numbered ids (in file order); a --file keeps its own")
    parser.add_argument("--bad-every", type=int, default=10_000, help="a bad line every N lines")
    parser.add_argument("--dup-every", type=int, default=50_000, help="a duplicate id every N")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each warehouse and its baseline this many times")
    parser.add_argument("--skip-dagster", action="store_true",
                        help="leave out the `dagster asset materialize` runs")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cdr-bench-"))
    drop = workdir / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    path = drop / f"voice_{DAY.isoformat()}.csv"
    if args.file:
        shutil.copy(args.file, path)
    else:
        from cdr_workflow.demo import write_voice_file

        write_voice_file(path, args.rows, DAY)
    sinch_ids = args.ids == "sinch" and not args.file
    bad, duplicates = inject_faults(path, args.bad_every, args.dup_every, sinch_ids)

    with_duckdb = args.warehouse in ("duckdb", "both", "all")
    if with_duckdb:
        duckdb_file, duckdb_figures = _median_round(
            [_duckdb_round(path, args.kind, workdir, not args.skip_dagster)
             for _ in range(args.rounds)])
    else:  # the reference for the other warehouses' figures
        (workdir / "baseline.duckdb").unlink(missing_ok=True)
        duckdb_file = _in_child(_duckdb_baseline, str(path), str(workdir / "baseline.duckdb"))
    duckdb_memory = _in_child(_duckdb_baseline, str(path), ":memory:")
    report: dict[str, Any] = {
        "file": path.name, "file_mb": round(path.stat().st_size / 2**20, 1),
        "ids": "given" if args.file else args.ids, "bad_lines": bad,
        "duplicate_ids": duplicates, "rounds": args.rounds,
        "duckdb_read_csv_typed_store_rejects_seconds": round(duckdb_file["seconds"], 3),
        "duckdb_read_csv_rejected": duckdb_file["rejected"],
        "duckdb_read_csv_in_memory_seconds": round(duckdb_memory["seconds"], 3)}
    if with_duckdb:
        report["duckdb"] = duckdb_figures
    if args.warehouse in ("postgresql", "both", "all"):
        copy, report["postgresql"] = _median_round(
            [_postgres_round(path, args.kind, args.postgres_url, workdir, not args.skip_dagster)
             for _ in range(args.rounds)])
        report["postgresql_copy_seconds"] = round(copy["seconds"], 3)
    if args.warehouse in ("iceberg", "all"):
        from local_lake import local_lake

        with local_lake(args.postgres_url, "bench") as catalog:
            append = _in_child(_iceberg_baseline, str(path), catalog)
            report["pyiceberg_append_seconds"] = round(append["seconds"], 3)
            report["iceberg"] = _measure(path, args.kind, f"iceberg://{catalog}/ingest",
                                         append["seconds"])
            report["iceberg"]["load_ratio_to_duckdb_baseline"] = round(
                report["iceberg"]["seconds"]["load_day"] / duckdb_file["seconds"], 2)
    print(json.dumps(report, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()

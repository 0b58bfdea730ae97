"""PostgreSQL's floor: how long a day's rows take to go in as the load sends them, with and
without the warehouse's index on the call id, beside `COPY` of the file.

The pipeline's load is measured by `ingest.py`; this measures what no load through ADBC's
binary COPY goes below: the server taking the rows, while ADBC encodes them in this process
(about 1 CPU-second per 1M rows, reported as `client_cpu_seconds`) on another core.
A file is loaded once by `load_day` into a new database; its rows, exactly as they were
stored (lineage columns included), are then sent again with ADBC's binary COPY, the way the
load sends them, into new tables shaped like the warehouse's:

- `as the warehouse`: its indexes, the hash index on the id among them, kept up during the
  COPY (what every load pays);
- `without the id index`: the BRIN index on `cdr_date` only;
- `id index built after`: no index during the COPY, then a B-tree on the id in its own
  collation (one that lookups by id can use) built over the rows, as a table of one day's
  rows could have it;
- `COPY of the file`: PostgreSQL's own `COPY ... FROM STDIN (FORMAT csv)` of the file's bytes
  into text columns (the ingest benchmark's baseline).

    python benchmarks/postgres_floor.py --file voice-sinch-ids.csv --rounds 3

Each round runs the variants in turn, each round starting one further along (a checkpoint
does not fall on the same one each time); prints JSON with every round's seconds and the
medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ingest import (
    DAY,
    DEFAULT_POSTGRES_URL,
    _drop_postgres,
    _fresh_postgres,
    _in_child,
    _postgres_baseline,
    inject_faults,
)

TABLE = "voice_cdrs"


def _rows_as_stored(path: Path, url: str) -> Any:
    """The day loaded by `load_day`, read back as the load sends it: as Arrow of the table's
    types, without the columns that hold no value (the load leaves those out of its COPY)."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa

    from cdr_workflow.kinds import KINDS
    from cdr_workflow.load import load_day
    from cdr_workflow.sources import DEFAULT_FILE_PATTERN
    from cdr_workflow.sources.local import LocalSource
    from cdr_workflow.warehouse import open_warehouse
    from cdr_workflow.warehouse.postgres import _filled
    from cdr_workflow.warehouse.tables import CDR_TABLES

    source = LocalSource(path.parent, re.compile(DEFAULT_FILE_PATTERN))
    load_day(source, open_warehouse(url), KINDS["voice"], DAY, "floor")
    with adbc.connect(url) as con, con.cursor() as cur:
        cur.execute(f"SELECT * FROM {TABLE}")
        rows = cur.fetch_arrow_table()
    filled = [n for n in rows.column_names if n in _filled(rows)]
    schema = CDR_TABLES["voice"].arrow_schema
    return rows.select(filled).cast(pa.schema([schema.field(n) for n in filled]))


def _send(url: str, rows: Any, indexes: str, built_after: str | None = None
          ) -> tuple[float, float, list[str]]:
    """Seconds to COPY `rows` into a new table shaped like the warehouse's, with `indexes`
    (`INCLUDING INDEXES`: the warehouse's own), and to build `built_after`, committed; this
    process's CPU-seconds meanwhile (ADBC's encoding); and the table's indexes then, as the
    server describes them."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa

    with adbc.connect(url) as con:
        with con.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS floor_copy")
            cur.execute(f"CREATE TABLE floor_copy (LIKE {TABLE} {indexes})")
            if not indexes:
                cur.execute("CREATE INDEX ON floor_copy USING brin (cdr_date) "
                            "WITH (autosummarize = on)")
        con.commit()
        start, cpu = time.perf_counter(), time.process_time()
        with con.cursor() as cur:
            cur.adbc_ingest("floor_copy", pa.RecordBatchReader.from_batches(
                rows.schema, rows.to_batches(max_chunksize=48_000)), mode="append")
            if built_after:
                cur.execute(built_after)
        con.commit()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        with con.cursor() as cur:
            cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'floor_copy' "
                        "ORDER BY indexname")
            return seconds, cpu, [definition for (definition,) in cur.fetchall()]


COPY = "COPY of the file"
VARIANTS = {
    "as the warehouse": ("INCLUDING INDEXES", None),
    "without the id index": ("", None),
    "id index built after": ("", "CREATE INDEX ON floor_copy (call_id)"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, help="default: a generated file of --rows")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cdr-floor-"))
    path = workdir / f"voice_{DAY.isoformat()}.csv"
    if args.file:
        shutil.copy(args.file, path)
    else:
        from cdr_workflow.demo import write_voice_file

        write_voice_file(path, args.rows, DAY)
        inject_faults(path, 10_000, 50_000, sinch_ids=True)
    name = f"cdr_floor_{os.getpid()}"
    url = _fresh_postgres(args.postgres_url, name)
    try:
        rows = _rows_as_stored(path, url)
        order = [*VARIANTS, COPY]
        seconds: dict[str, list[float]] = {v: [] for v in order}
        client_cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
        indexes: dict[str, list[str]] = {}
        for round_number in range(args.rounds):
            turn = round_number % len(order)
            for variant in order[turn:] + order[:turn]:
                if variant == COPY:
                    copy = _in_child(_postgres_baseline, str(path), _fresh_postgres(
                        args.postgres_url, f"{name}_copy"))
                    seconds[COPY].append(round(copy["seconds"], 3))
                    continue
                took, cpu, indexes[variant] = _send(url, rows, *VARIANTS[variant])
                seconds[variant].append(round(took, 3))
                client_cpu[variant].append(round(cpu, 3))
    finally:
        _drop_postgres(args.postgres_url, name)
        _drop_postgres(args.postgres_url, f"{name}_copy")
        shutil.rmtree(workdir)
    print(json.dumps({
        "file": path.name, "rows": rows.num_rows, "rounds": args.rounds,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "indexes": indexes, "seconds_each_round": seconds,
        "client_cpu_seconds_each_round": client_cpu,
        "median_seconds": {v: statistics.median(s) for v, s in seconds.items()},
    }, indent=2))


if __name__ == "__main__":
    main()

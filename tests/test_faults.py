"""Faults: a load killed with SIGKILL mid-append, two loads at once on one DuckDB file, and a
warehouse that cannot be reached."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import PT_HEADER, line, pt_row

from cdr_workflow import reader as reader_module
from cdr_workflow.demo import write_day, write_voice_file
from cdr_workflow.errors import CdrFileError
from cdr_workflow.kinds import VOICE
from cdr_workflow.load import load_day
from cdr_workflow.sources import DEFAULT_FILE_PATTERN
from cdr_workflow.sources.local import LocalSource
from cdr_workflow.warehouse import Warehouse, open_warehouse
from cdr_workflow.warehouse import postgres as postgres_module

DAY = dt.date(2026, 11, 21)

LOAD_SCRIPT = textwrap.dedent("""
    import datetime as dt, re, sys
    from pathlib import Path
    from cdr_workflow.load import load_day
    from cdr_workflow.sources import DEFAULT_FILE_PATTERN
    from cdr_workflow.sources.local import LocalSource
    from cdr_workflow.warehouse import Warehouse, open_warehouse
    from cdr_workflow.kinds import KINDS, VOICE
    from cdr_workflow.warehouse.day_load import DayLoad

    drop, url, day, load_id = sys.argv[1:5]
    kind = KINDS[sys.argv[5]] if len(sys.argv) > 5 else VOICE
    appended = DayLoad.add_rows
    def announce(self, *args):
        appended(self, *args)
        print("appended", flush=True)  # the parent kills us here, mid-transaction
    DayLoad.add_rows = announce
    source = LocalSource(Path(drop), re.compile(DEFAULT_FILE_PATTERN))
    load_day(source, open_warehouse(url), kind, dt.date.fromisoformat(day), load_id)
    print("done", flush=True)
""")


def start_load(drop: Path, url: str, day: dt.date, load_id: str, kind: str = "voice"
               ) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(drop), url, day.isoformat(),
                             load_id, kind], stdout=subprocess.PIPE, text=True)


def a_day_loaded_and_its_bigger_delivery(tmp_path: Path, warehouse_url: str, rows: int
                                         ) -> tuple[Path, LocalSource, Warehouse]:
    """The day loaded once (load id "before"), then a file of `rows` rows dropped for it."""
    drop = tmp_path / "drop"
    source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
    warehouse = open_warehouse(warehouse_url)
    write_voice_file(drop / "voice_2026-11-21.csv", 100, DAY, seed=1)
    load_day(source, warehouse, VOICE, DAY, "before")
    write_voice_file(drop / "voice_2026-11-21.csv", rows, DAY, seed=2)
    return drop, source, warehouse


def test_a_load_killed_mid_append_leaves_the_day_untouched_and_a_rerun_is_correct(
        tmp_path, warehouse_url):
    drop, source, warehouse = a_day_loaded_and_its_bigger_delivery(tmp_path, warehouse_url,
                                                                   200_000)

    child = start_load(drop, warehouse_url, DAY, "killed")
    announced = child.stdout.readline().strip()
    assert announced == "appended", f"the load ended before its append (exit {child.wait()})"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    assert warehouse.query("SELECT load_id, COUNT(*) FROM voice_cdrs GROUP BY 1") == [
        ("before", 100)]
    assert warehouse.query("SELECT load_id, rows_read FROM cdr_files") == [("before", 100)]
    result = load_day(source, warehouse, VOICE, DAY, "rerun")
    assert result.rows_loaded == 200_000
    assert warehouse.query("SELECT load_id, COUNT(*) FROM voice_cdrs GROUP BY 1") == [
        ("rerun", 200_000)]


def test_loads_at_once_all_land_two_days_and_two_kinds_of_one_day(tmp_path, warehouse_url):
    """DuckDB: the second writer waits for the file; PostgreSQL: transactions; Iceberg: each
    table's commit retried on a conflict, the ledger's partition merged (two kinds, one day)."""
    drop = tmp_path / "drop"
    days = [DAY - dt.timedelta(days=1), DAY]
    for day in days:
        write_day(drop, day, rows_per_file=3000, with_faults=False)
    loads = [(days[0], "voice"), (days[1], "voice"), (days[1], "verification")]
    children = [start_load(drop, warehouse_url, day, f"run-{day}-{kind}", kind)
                for day, kind in loads]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0, 0]
    assert all("done" in out for out in outputs)
    warehouse = open_warehouse(warehouse_url)
    ledger = warehouse.query("SELECT kind, cdr_date, SUM(rows_read), SUM(rows_loaded) "
                             "FROM cdr_files GROUP BY 1, 2 ORDER BY 2, 1")
    assert [(k, str(d), int(r), int(n)) for k, d, r, n in ledger] == [
        ("voice", str(days[0]), 12000, 12000), ("verification", str(days[1]), 3000, 3000),
        ("voice", str(days[1]), 12000, 12000)]
    for table, kind in (("voice_cdrs", "voice"), ("verification_cdrs", "verification")):
        stored = warehouse.query(f"SELECT cdr_date, COUNT(*) FROM {table} GROUP BY 1 ORDER BY 1")
        assert [(str(d), int(n)) for d, n in stored] == [
            (str(d), int(n)) for k, d, _, n in ledger if k == kind]


def test_an_unreachable_warehouse_is_retried_then_named_without_its_password(monkeypatch):
    naps: list[float] = []
    monkeypatch.setattr(postgres_module.time, "sleep", naps.append)
    warehouse = open_warehouse("postgresql://cdr:Sup3rS3cret@127.0.0.1:1/warehouse")
    with pytest.raises(ConnectionError) as raised:
        warehouse.query("SELECT 1")
    message = str(raised.value)
    assert "postgresql://cdr@127.0.0.1:1/warehouse after 5 attempts" in message
    assert "Sup3rS3cret" not in message and "Sup3rS3cret" not in repr(raised.value.__cause__)
    assert naps == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_a_warehouse_failing_mid_stream_stops_the_reading_and_keeps_the_day(
        tmp_path, warehouse_url, monkeypatch):
    """The warehouse gives up after the first rows of a big file: the error is its own, the
    day keeps its earlier load, and no reader thread is left behind."""
    import threading
    import time

    _, source, warehouse = a_day_loaded_and_its_bigger_delivery(tmp_path, warehouse_url,
                                                                150_000)

    def give_up(con, table, batches):
        next(iter(batches))
        raise OSError("disk full")

    monkeypatch.setattr(warehouse, "append_stream", give_up)
    with pytest.raises(OSError, match="disk full") as failed:  # its traceback kept, as a
        load_day(source, warehouse, VOICE, DAY, "failed")      # run's log may keep it
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
            t.name.startswith(("cdr-reader", "cdr-block")) for t in threading.enumerate()):
        time.sleep(0.1)
    assert not [t.name for t in threading.enumerate()
                if t.name.startswith(("cdr-reader", "cdr-block"))], failed.traceback
    assert warehouse.query("SELECT DISTINCT load_id FROM voice_cdrs") == [("before",)]


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_a_load_failing_inside_the_bulk_insert_leaves_the_session_as_it_was(
        tmp_path, warehouse_url):
    """A file that breaks mid-stream aborts DuckDB's insert; the next transaction of the same
    session (a backfill's next day) runs with DuckDB's default row order again."""
    drop = tmp_path / "drop"
    source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
    warehouse = open_warehouse(warehouse_url)
    plain = write_voice_file(tmp_path / "voice.csv", 100_000, DAY, seed=3)
    packed = gzip.compress(plain.read_bytes())
    drop.mkdir()
    (drop / "voice_2026-11-21.csv.gz").write_bytes(packed[: len(packed) * 2 // 3])
    with warehouse.session():
        with pytest.raises(Exception, match="cannot decompress"):
            load_day(source, warehouse, VOICE, DAY, "broken")
        assert warehouse.query(
            "SELECT current_setting('preserve_insertion_order')") == [(True,)]


@pytest.mark.parametrize("warehouse_url", ["duckdb", "postgres"], indirect=True)
def test_a_file_breaking_after_a_late_column_fills_keeps_the_day(tmp_path, warehouse_url,
                                                                  monkeypatch):
    """The Custom column stays empty for the file's first block, then fills (PostgreSQL's
    load starts a second COPY with it), then the gzip is cut short: the reader's own error is
    raised, and the day keeps its earlier load whole."""
    # the reader hands a block on once READ_THREADS more are read: pinned, so the blocks that
    # reach the warehouse before the cut do not depend on the machine's cores
    monkeypatch.setattr(reader_module, "READ_THREADS", 2)
    drop, source, warehouse = a_day_loaded_and_its_bigger_delivery(tmp_path, warehouse_url, 1)
    before = warehouse.query("SELECT call_id, custom, load_id FROM voice_cdrs ORDER BY 1")
    (drop / "voice_2026-11-21.csv").unlink()
    rows = [line(pt_row(f"id-{n}", Custom="" if n < 100_000 else f"late {n}"))
            for n in range(400_000)]
    packed = gzip.compress("\n".join([PT_HEADER, *rows, ""]).encode(), compresslevel=1)
    (drop / "voice_2026-11-21.csv.gz").write_bytes(packed[: len(packed) * 19 // 20])
    copies: list[frozenset[str]] = []

    class CountedRun(postgres_module._Run):
        def __init__(self, *args):
            super().__init__(*args)
            copies.append(self.columns)

    monkeypatch.setattr(postgres_module, "_Run", CountedRun)
    with pytest.raises(CdrFileError, match="cannot decompress"):
        load_day(source, warehouse, VOICE, DAY, "broken")
    assert warehouse.query("SELECT call_id, custom, load_id FROM voice_cdrs ORDER BY 1") == before
    if warehouse_url.startswith("postgres"):  # the failure came during the second COPY
        assert [("custom" in columns) for columns in copies] == [False, True]


def test_duckdb_never_draws_its_progress_bar_on_standard_output(tmp_path):
    """DuckDB draws one for a query over 2 s, on standard output: into a run's captured log,
    a terminal, or a parent reading the load's lines (which read it in place of its own).
    Asked of a process of its own, as a load runs: inside pytest DuckDB draws none anyway."""
    script = textwrap.dedent("""
        import sys
        from cdr_workflow.independent import _engine
        from cdr_workflow.seen_ids import _hasher
        from cdr_workflow.warehouse import open_warehouse

        setting = "SELECT current_setting('enable_progress_bar')"
        warehouse = open_warehouse(f"duckdb:///{sys.argv[1]}/warehouse.duckdb")
        others = (_engine().cursor(), _hasher().cursor())
        print([*warehouse.query(setting)[0], *(c.execute(setting).fetchone()[0] for c in others)])
    """)
    shown = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                           text=True, check=True).stdout
    assert shown.strip() == "[False, False, False]"

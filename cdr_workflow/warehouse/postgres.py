"""The production warehouse: PostgreSQL through ADBC, bulk loads as binary COPY from Arrow."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa

from cdr_workflow.kinds import KINDS
from cdr_workflow.seen_ids import SeenIds, among, id_hashes
from cdr_workflow.warehouse.base import CacheFit, Warehouse
from cdr_workflow.warehouse.tables import CDR_TABLES, HELD_TABLES

CONNECT_ATTEMPTS = 5
# a day's duplicate search groups a million ids: with the default 4 MB it sorts on disk
WORK_MEM = "256MB"
CONNECT_BACKOFF_SECONDS = 1.0  # 1, 2, 4, 8 s between attempts
# a read beside another must not queue for a lock behind a schema change that waits for the
# other's transaction: it gives up, and its caller reads on the first connection instead
BESIDE_LOCK_TIMEOUT = "1s"
SCHEMA_LOCK = 0x0CD2_7AB1E5  # the advisory lock held while the tables are created
# each day's id hashes as its load saw them (sorted, 8 bytes an id), with the load's id and
# the hash of `HASH_PROBE`: what the search of other days reads instead of their rows. A
# record is current while the ledger names the same load and DuckDB hashes the probe alike.
ID_HASHES = "cdr_id_hashes"
ID_HASHES_DDL = (f"CREATE TABLE {ID_HASHES} (table_name TEXT NOT NULL, cdr_date DATE NOT NULL, "
                 "load_id TEXT NOT NULL, hash_probe BIGINT NOT NULL, hashes BYTEA NOT NULL)",
                 # random hashes do not compress: stored as they are, not tried first
                 f"ALTER TABLE {ID_HASHES} ALTER COLUMN hashes SET STORAGE EXTERNAL")
HASH_PROBE = "cdr_workflow"
# a day's ids are looked up in the index on the id, not in the records, when the other days
# have this many times more hashes recorded: 20k ids probed in 66-400 ms (5M rows, warm or
# not), 4M recorded hashes read and searched in 0.17 s
RECORDED_PER_PROBE = 100
KIND_OF_TABLE = {table.name: kind for kind, table in CDR_TABLES.items()}
# a load's ANALYZE samples 300 times this many rows, from as many pages: the default (100)
# reads 30,000 of a 1M-row day's ~32,000 pages (0.31-0.43 s); 3,000 rows (0.024 s) give its
# queries the same plans and estimates, and autovacuum's own ANALYZE refines them later
LOAD_STATISTICS_TARGET = 10


class PostgresWarehouse(Warehouse):
    records_id_hashes = True

    def __init__(self, url: str):
        self.url = url.replace("postgres://", "postgresql://", 1)

    @property
    def display_url(self) -> str:
        parts = urlsplit(self.url)
        netloc = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    @contextmanager
    def _open(self) -> Iterator[Any]:
        con = self._connect_retrying()
        try:
            yield con
        finally:
            con.close()

    def _begin(self, con: Any) -> None:
        self.execute(con, f"SET LOCAL work_mem = '{WORK_MEM}'")

    def distinct_ids_sql(self, column: str) -> str:
        """PostgreSQL's own 64-bit hash of each id: 8 bytes sort faster than the id's text
        (1M ids: 0.32-0.43 s against 0.52-0.79 s). Equal ids hash alike, so ids that
        repeat are never hidden; a collision only adds a distinct value less."""
        return f"hashtextextended({column}, 0)"

    def reads_beside(self, con: Any) -> bool:
        (written,), = self.execute(con, "SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
        return not written

    @contextmanager
    def beside(self) -> Iterator[Any]:
        """One attempt to connect, not `_open`'s retries: the caller has a connection to fall
        back on."""
        con = adbc.connect(self.url)
        try:
            self._begin(con)
            self.execute(con, f"SET LOCAL lock_timeout = '{BESIDE_LOCK_TIMEOUT}'")
            yield con
        finally:
            con.rollback()
            con.close()

    def ensure_tables(self) -> None:
        """The tables, and the indexes that keep a day's cost flat as history grows: its
        queries find the day's rows, and an id's copies on other days, without reading all
        days (PostgreSQL has no zone maps). Days are loaded in order of arrival, so a BRIN
        index (a day range per 128 pages) finds a day almost as well as a B-tree, at a
        fraction of its upkeep (1M rows appended: +0.2 s against +0.7 s). Ids are found by
        a hash index: Sinch's call ids are random UUIDs, which a B-tree takes at random
        places (1M appended: 7.1 s against 3.6 s for the hash index; ids in order favour
        the B-tree, 3.0 s against 4.1 s), and only equality is ever asked of them."""
        if self._tables_ready:
            return
        super().ensure_tables()
        wanted: dict[str, str] = {}  # index name → what it indexes
        replaced: set[str] = set()  # earlier versions' B-trees on cdr_date and the id
        for kind in KINDS.values():
            for table in (CDR_TABLES[kind.name], HELD_TABLES[kind.name]):
                wanted[f"{table.name}_cdr_date_brin"] = (
                    f"ON {table.name} USING brin (cdr_date) WITH (autosummarize = on)")
                wanted[_id_index(table.name, kind.id_column)] = (
                    f"ON {table.name} USING hash ({kind.id_column})")
                replaced |= {f"{table.name}_cdr_date_idx", f"{table.name}_{kind.id_column}_idx"}
        with self._transaction() as con:
            self._lock_schema(con)
            present = {name for (name,) in self.execute(
                con, "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}
            for name, target in wanted.items():
                if name not in present:
                    self.execute(con, f"CREATE INDEX IF NOT EXISTS {name} {target}")
            for name in replaced & present:
                self.execute(con, f"DROP INDEX IF EXISTS {name}")
            (exists,), = self.execute(con, "SELECT to_regclass(?) IS NOT NULL", (ID_HASHES,))
            if not exists:  # DDL only when missing: it locks, and needs the owner
                for statement in ID_HASHES_DDL:
                    self.execute(con, statement)

    def record_id_hashes(self, con: Any, table: str, day: dt.date, hashes: np.ndarray,
                         load_id: str, replacing: bool = True) -> None:
        if replacing:
            self.execute(con, f"DELETE FROM {ID_HASHES} WHERE table_name = ? AND cdr_date = ?",
                         (table, day))
        self.append(con, ID_HASHES, pa.table({
            "table_name": pa.array([table]), "cdr_date": pa.array([day], pa.date32()),
            "load_id": pa.array([load_id]), "hash_probe": pa.array([_hash_probe()], pa.int64()),
            "hashes": pa.array([hashes.tobytes()], pa.binary())}))

    def catch_up(self, con: Any, table: str) -> None:
        """The pages earlier loads appended, summarised in the BRIN index on `cdr_date`: a
        range not summarised is read by every query for any day until autovacuum gets to it,
        which a backfill outruns (five 1M-row days loaded back to back: a day's delete of its
        earlier rows read them all, 0.7 s). The day's own pages are left to the next load:
        they are what the day's queries read anyway. Only the index's owner may summarise it
        (another role loads as before). Then the days without a current record of their ids
        (loaded by an earlier release, or by another DuckDB) have one made from their rows."""
        self.execute(con, "SELECT brin_summarize_new_values(oid) FROM pg_class WHERE oid = "
                     "to_regclass(?) AND pg_has_role(relowner, 'USAGE')",
                     (f"{table}_cdr_date_brin",))
        key = KINDS[KIND_OF_TABLE[table]].id_column
        for day, load_id in self._days_not_recorded(con, table):
            self.record_id_hashes(con, table, day,
                                  self._hashes_of_rows(con, table, key, day), load_id)

    def _days_not_recorded(self, con: Any, table: str) -> list[tuple[dt.date, str]]:
        """The days of the ledger, with the load that wrote them, that have no current record
        of their ids."""
        return [(day, load_id) for day, load_id in self.execute(con, f"""
            WITH ledger AS (SELECT cdr_date, MAX(load_id) AS load_id FROM cdr_files
                            WHERE kind = ? GROUP BY cdr_date)
            SELECT cdr_date, load_id FROM ledger l WHERE NOT EXISTS (
              SELECT 1 FROM {ID_HASHES} h WHERE h.table_name = ? AND h.cdr_date = l.cdr_date
              AND h.load_id = l.load_id AND h.hash_probe = ?)""",
            (KIND_OF_TABLE[table], table, _hash_probe()))]

    def days_sharing_ids(self, con: Any, table: str, key: str, day: dt.date,
                         verify: bool = False) -> list[dt.date] | None:
        """The other days whose recorded id hashes (`record_id_hashes`) include one of the
        day's, and those without a current record: 8 bytes an id of history, read a day at a
        time, where a join of the ids reads every other day's rows (9.4 s with 12M rows in
        the table); None (every day, which the index on the id serves) for a day much smaller
        than the history recorded. `verify`: the day's hashes computed again from its rows'
        ids, not taken from its record; other days' current records are trusted as their
        loads wrote them."""
        sizes = dict(self.execute(con, f"SELECT cdr_date, SUM(octet_length(hashes)) / 8 FROM "
                                  f"{ID_HASHES} WHERE table_name = ? GROUP BY cdr_date", (table,)))
        own_ids = sizes.pop(day, 0)
        not_recorded = {d for d, _ in self._days_not_recorded(con, table) if d != day}
        if not sizes and not not_recorded:
            return []  # a first day: nothing to read, not even the day's ids
        if sum(sizes.values()) > RECORDED_PER_PROBE * own_ids:
            return None  # a small day in a long history: its ids looked up in the index
        if verify:
            day_hashes = self._hashes_of_rows(con, table, key, day)
        else:
            day_hashes = self._recorded(con, table, day)
        sharing = {other for other in sizes.keys() - not_recorded  # those are searched anyway
                   if among(self._recorded(con, table, other), day_hashes).any()}
        return sorted(sharing | not_recorded)

    def _hashes_of_rows(self, con: Any, table: str, key: str, day: dt.date) -> np.ndarray:
        """The hashes of the day's ids, read from its rows, sorted as a record keeps them."""
        with con.cursor() as cur:
            cur.execute(_numbered(f"SELECT {key} FROM {table} WHERE cdr_date = ?"), (day,))
            return SeenIds.sorted_storable(id_hashes(cur.fetch_arrow_table().column(0)))

    def _recorded(self, con: Any, table: str, day: dt.date) -> np.ndarray:
        """A day's recorded id hashes, sorted: one day at a time, as the driver holds a whole
        result in memory (a year of 1M-id days is 2.9 GB of them)."""
        with con.cursor() as cur:
            cur.execute(_numbered(f"SELECT hashes FROM {ID_HASHES} WHERE table_name = ? AND "
                                  "cdr_date = ?"), (table, day))
            parts = [np.frombuffer(value.as_buffer(), np.uint64)
                     for value in cur.fetch_arrow_table().column(0).combine_chunks()]
        return np.sort(np.concatenate(parts)) if len(parts) > 1 else (
            parts[0] if parts else np.zeros(0, np.uint64))

    def take_turn_to_load(self, con: Any, table: str) -> None:
        """A lock held until the load's transaction ends: each load's search of other days
        sees only committed days, and its delete only committed rows, so two at once could
        both keep an id, or both keep a day's rows."""
        self.execute(con, "SELECT pg_advisory_xact_lock(hashtext(?))", (table,))

    def _lock_schema(self, con: Any) -> None:
        # two first runs at once: CREATE TABLE IF NOT EXISTS is not safe against itself
        self.execute(con, f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")

    def _connect_retrying(self) -> Any:
        """A server restarting or failing over is a moment, not a failed day: retry with
        backoff, then fail naming the server (the driver's own message can quote the
        connection string, password included, so it is not passed on)."""
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return adbc.connect(self.url)
            except adbc_driver_manager.Error as exc:
                failure = type(exc).__name__
                if attempt < CONNECT_ATTEMPTS - 1:
                    time.sleep(CONNECT_BACKOFF_SECONDS * 2**attempt)
        raise ConnectionError(f"cannot connect to the warehouse at {self.display_url} after "
                              f"{CONNECT_ATTEMPTS} attempts ({failure})") from None

    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with con.cursor() as cur:
            cur.execute(_numbered(sql), params or None)
            return cur.fetchall() if cur.description else []

    def fetch_arrow(self, con: Any, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with con.cursor() as cur:
            cur.execute(_numbered(sql), params or None)
            return cur.fetch_arrow_table()

    def id_index_fit(self, table: str, id_column: str) -> CacheFit | None:
        """The hash index on the ids against shared_buffers. A load inserts its ids at random
        places across the whole index; once the index is larger, inserts wait for pages read
        back (a 10M-row day: 119k rows/s with 128 MB, 151k with 1 GB)."""
        index = _id_index(table, id_column)
        ((size, cache),) = self.query(
            "SELECT pg_relation_size(to_regclass(?)), (SELECT setting::bigint * "
            "pg_size_bytes(unit) FROM pg_settings WHERE name = 'shared_buffers')", (index,))
        if size is None:
            return None
        return CacheFit(index, int(size), "shared_buffers", int(cache),
                        "set shared_buffers above the index's size (README: PostgreSQL's memory)")

    def refresh_statistics(self, con: Any, table: str, columns: Sequence[str]) -> None:
        # without fresh statistics the planner hashes a million new rows to join them with
        # an "empty" table; ANALYZE samples and sorts each column's sample, so only the
        # columns asked for (all 24: 0.28-0.4 s on a million-row day, the ten a voice day's
        # queries look up or group by: 0.23-0.24 s, its four lookups alone: 0.13-0.17 s),
        # from a smaller sample (`LOAD_STATISTICS_TARGET`, until the load's transaction ends;
        # only ANALYZE reads it); a column's own target still wins
        self.execute(con, f"SET LOCAL default_statistics_target = {LOAD_STATISTICS_TARGET}")
        self.execute(con, f"ANALYZE {table} ({', '.join(columns)})")

    def append(self, con: Any, table: str, rows: pa.Table, temporary: bool = False) -> None:
        """Binary COPY straight from Arrow, inside the open transaction."""
        with con.cursor() as cur:
            cur.adbc_ingest(table, rows, mode="append", temporary=temporary)

    def append_stream(self, con: Any, table: str, batches: pa.RecordBatchReader) -> None:
        """Binary COPY of the stream without the columns it holds no value in: COPY writes
        every field of every row, a NULL too, and a file fills only its layout's columns (a
        phone-terminated file, 20 of 24; ADBC sending 1M rows: 0.24-0.53 CPU-seconds less).
        A batch with a value in a column left out ends that COPY and the next one sends the
        column too, so a stream whose columns are filled from its first batch on is one COPY.
        Empty batches are passed over; a COPY needs a column, so rows with no value at all
        send their first."""
        rest: Iterator[pa.RecordBatch] = (batch for batch in batches if batch.num_rows)
        columns: set[str] = set()
        first = next(rest, None)
        while first is not None:
            columns |= _filled(first) or {batches.schema.names[0]}
            run = _Run(first, rest, columns, batches.schema)
            with con.cursor() as cur:
                cur.adbc_ingest(table, pa.RecordBatchReader.from_batches(
                    run.schema, iter(run)), mode="append")
            first = run.stopped_at


def _id_index(table: str, id_column: str) -> str:
    return f"{table}_{id_column}_hash"


@functools.cache
def _hash_probe() -> int:
    """The hash of `HASH_PROBE` with this DuckDB, as a signed 64-bit number."""
    return int(id_hashes(pa.array([HASH_PROBE]))[:1].view(np.int64)[0])


def _numbered(sql: str) -> str:
    """`?` placeholders as libpq spells them, `$1`, `$2`, …"""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def _filled(batch: pa.RecordBatch | pa.Table) -> set[str]:
    """The columns of the batch holding at least one value."""
    return {name for name, column in zip(batch.schema.names, batch.columns, strict=True)
            if column.null_count < len(column)}


class _Run:
    """Batches of a stream, from `first`, with only `columns`, up to one that holds a value
    in another column (`stopped_at`)."""

    def __init__(self, first: pa.RecordBatch, rest: Iterator[pa.RecordBatch],
                 columns: set[str], schema: pa.Schema):
        self.first, self.rest, self.columns = first, rest, frozenset(columns)
        self.names = [name for name in schema.names if name in columns]
        self.schema = pa.schema([schema.field(name) for name in self.names])
        self.stopped_at: pa.RecordBatch | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        yield self.first.select(self.names)
        for batch in self.rest:
            if not _filled(batch) <= self.columns:
                self.stopped_at = batch
                return
            yield batch.select(self.names)

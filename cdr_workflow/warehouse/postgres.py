"""The production warehouse: PostgreSQL through ADBC, bulk loads as binary COPY from Arrow."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa

from cdr_workflow.kinds import KINDS
from cdr_workflow.warehouse.base import Warehouse
from cdr_workflow.warehouse.tables import CDR_TABLES, HELD_TABLES, Table

CONNECT_ATTEMPTS = 5
# a day's duplicate search groups a million ids: with the default 4 MB it sorts on disk
WORK_MEM = "256MB"
CONNECT_BACKOFF_SECONDS = 1.0  # 1, 2, 4, 8 s between attempts
SCHEMA_LOCK = 0x0CD2_7AB1E5  # the advisory lock held while the tables are created
PARTITION_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")
ID_COLUMNS = {CDR_TABLES[name].name: kind.id_column for name, kind in KINDS.items()}


def day_partition(table: str, day: dt.date) -> str:
    """The partition of a CDR table holding one day: `voice_cdrs_20261121`."""
    return f"{table}_{day:%Y%m%d}"


class PostgresWarehouse(Warehouse):
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

    def _table_ddl(self, table: Table, existing: set[str]) -> list[str]:
        """A CDR table is partitioned by day: see `clear_day`."""
        if table.name in ID_COLUMNS and not existing:
            return [table.create_statement(" PARTITION BY RANGE (cdr_date)")]
        return table.ddl(existing)

    def _complete_schema(self, con: Any) -> None:
        """Held copies are found by day and by id: a BRIN on `cdr_date` (days arrive in
        order; a day range per 128 pages, at a fraction of a B-tree's upkeep) and a hash
        index on the id (Sinch's call ids are random UUIDs, which a B-tree takes at random
        places; only equality is ever asked of them). A CDR table an earlier release made
        unpartitioned becomes the partition of the days it holds."""
        for kind in KINDS.values():
            self._partition_earlier_table(con, CDR_TABLES[kind.name], kind.id_column)
            self._index_by_day_and_id(con, HELD_TABLES[kind.name].name, kind.id_column)

    def _index_by_day_and_id(self, con: Any, table: str, key: str,
                             name: str | None = None) -> None:
        """`table`'s BRIN on `cdr_date` and hash index on the id (named after `name`), in
        place of an earlier release's B-trees. Only what is missing or replaced: even
        `CREATE INDEX IF NOT EXISTS` waits for a load writing the table."""
        name = name or table
        present = {index for (index,) in self.execute(
            con, "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = ?", (table,))}
        for index, target in ((f"{name}_cdr_date_brin", "brin (cdr_date) WITH "
                               "(autosummarize = on)"), (f"{name}_{key}_hash", f"hash ({key})")):
            if index not in present:
                self.execute(con, f"CREATE INDEX IF NOT EXISTS {index} ON {table} USING {target}")
        for replaced in {f"{name}_cdr_date_idx", f"{name}_{key}_idx"} & present:
            self.execute(con, f"DROP INDEX IF EXISTS {replaced}")

    def _partition_earlier_table(self, con: Any, table: Table, key: str) -> None:
        """An unpartitioned CDR table (an earlier release's) becomes one partition holding
        its days, indexed as before; an empty one is made again, partitioned."""
        name = table.name
        ((relkind,),) = self.execute(
            con, "SELECT relkind FROM pg_class WHERE oid = to_regclass(?)", (name,))
        if relkind == "p":
            return
        ((first, last),) = self.execute(con, f"SELECT MIN(cdr_date), MAX(cdr_date) FROM {name}")
        if first is None:
            self.execute(con, f"DROP TABLE {name}")
            self.execute(con, table.create_statement(" PARTITION BY RANGE (cdr_date)"))
            return
        earlier = f"{name}_{first:%Y%m%d}_{last:%Y%m%d}"
        self.execute(con, f"ALTER TABLE {name} RENAME TO {earlier}")
        self.execute(con, table.create_statement(" PARTITION BY RANGE (cdr_date)"))
        self._attach(con, name, earlier, first, last + dt.timedelta(days=1))
        self._index_by_day_and_id(con, earlier, key, name=name)

    def _attach(self, con: Any, table: str, partition: str, first: dt.date,
                end: dt.date) -> None:
        self.execute(con, f"ALTER TABLE {table} ATTACH PARTITION {partition} "
                     f"FOR VALUES FROM ('{first.isoformat()}') TO ('{end.isoformat()}')")

    def clear_day(self, con: Any, table: str, day: dt.date) -> None:
        """A CDR table keeps each day in a partition of its own, emptied and unindexed
        while the day loads: its id index is built once the rows are in (`prepare_lookups`),
        which costs less than keeping an index up as a million random ids stream in, and
        the day's cost does not grow with the history's. A new day's partition is attached
        without blocking readers; a day loaded again has its partition truncated, so that
        queries reading it wait for the load to commit (queries of other days do not).
        Days an earlier release loaded are deleted from the partition holding them."""
        if table not in ID_COLUMNS:
            super().clear_day(con, table, day)
            return
        # loads of a kind take turns: two loads of a new day would both create its
        # partition, and a day loaded again holds its partition locked while every other
        # load reads all days
        self.execute(con, "SELECT pg_advisory_xact_lock(hashtext(?))", (table,))
        partition, holding = day_partition(table, day), self._partition_holding(con, table, day)
        if holding == partition:
            self.execute(con, f"TRUNCATE {partition}")
            self.execute(con, f"DROP INDEX IF EXISTS {partition}_{ID_COLUMNS[table]}_idx")
        elif holding:
            super().clear_day(con, table, day)
        else:
            self.execute(con, f"CREATE TABLE {partition} (LIKE {table} INCLUDING DEFAULTS)")
            self._attach(con, table, partition, day, day + dt.timedelta(days=1))

    def _partition_holding(self, con: Any, table: str, day: dt.date) -> str | None:
        for name, bound in self.execute(
                con, "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(?)",
                (table,)):
            found = PARTITION_BOUND.search(bound)
            if found and (dt.date.fromisoformat(found[1]) <= day
                          < dt.date.fromisoformat(found[2])):
                return name
        return None

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
        counter = itertools.count(1)
        numbered = re.sub(r"\?", lambda _: f"${next(counter)}", sql)  # libpq spells them $n
        with con.cursor() as cur:
            cur.execute(numbered, params or None)
            return cur.fetchall() if cur.description else []

    def prepare_lookups(self, con: Any, table: str, day: dt.date,
                        columns: Sequence[str]) -> None:
        """The day's partition gets its id index, a B-tree (built from sorted ids, unlike
        one kept up as random ids come: 1M ids in 1.6–1.9 s, a hash index 2.3 s); the
        partition holding the day, fresh statistics. Without them the planner hashes a
        million new rows to join them with an "empty" table; ANALYZE samples and sorts each
        column's sample, so only the columns looked up by (all 24: 0.4 s on a million-row
        day, these four: 0.17 s)."""
        partition = self._partition_holding(con, table, day) if table in ID_COLUMNS else None
        if partition == day_partition(table, day):
            self.execute(con, f"CREATE INDEX IF NOT EXISTS {partition}_{ID_COLUMNS[table]}_idx "
                         f"ON {partition} ({ID_COLUMNS[table]})")
        # the planner estimates a join or grouping of the parent by its own statistics,
        # which autovacuum never gathers for a partitioned table (without them it probed the
        # id index a million times instead of hashing: 3.7 s against 0.6 s)
        for analysed in dict.fromkeys((partition or table, table)):
            self.execute(con, f"ANALYZE {analysed} ({', '.join(columns)})")

    def append(self, con: Any, table: str, rows: pa.Table, temporary: bool = False) -> None:
        """Binary COPY straight from Arrow, inside the open transaction."""
        with con.cursor() as cur:
            cur.adbc_ingest(table, rows, mode="append", temporary=temporary)

    def append_stream(self, con: Any, table: str, batches: pa.RecordBatchReader) -> None:
        """One binary COPY for the whole stream."""
        with con.cursor() as cur:
            cur.adbc_ingest(table, batches, mode="append")

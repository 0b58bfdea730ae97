"""The warehouse interface: connections, transactions, bulk appends and the tables.

Engines differ only in how they connect, bulk-append Arrow data and spell parameters; every
query the product runs is plain SQL both engines accept, with `?` placeholders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from cdr_workflow.spool import grouped
from cdr_workflow.warehouse.tables import ALL_TABLES, Column, Table

if TYPE_CHECKING:
    import numpy as np

STREAM_APPEND_ROWS = 2 * 122_880  # rows per append when a stream is appended in parts
MB = 1024 * 1024


@dataclass(frozen=True)
class CacheFit:
    """An index each load inserts into at random places, against the server's cache of pages
    (`cache`: the setting that sizes it, as the server names it) and what to do once the
    index is the larger (`remedy`)."""

    index: str
    index_bytes: int
    cache: str
    cache_bytes: int
    remedy: str

    @property
    def outgrown(self) -> bool:
        return self.index_bytes > self.cache_bytes

    def warning(self) -> str:
        return (f"the index {self.index} ({self.index_bytes / MB:,.0f} MB) has outgrown "
                f"{self.cache} ({self.cache_bytes / MB:,.0f} MB): each load inserts its ids at "
                "random places across it and waits for pages read back (from disk once memory "
                f"is short too), so loads slow as history grows; {self.remedy}")


class Warehouse(ABC):
    """One warehouse: DuckDB (embedded) or PostgreSQL, same tables, same invariants."""

    # whether `days_sharing_ids` compares the `id_hash` column: only then do loads fill it
    searches_by_id_hash = False
    # whether it reads a record of each day's id hashes, which loads then write
    records_id_hashes = False
    _session: Any = None  # the connection held open by `session()`, if any
    _joined: Any = None  # the connection of the open `transaction()`, if any
    _tables_ready = False

    @property
    @abstractmethod
    def display_url(self) -> str:
        """Where the warehouse is, without credentials."""

    @abstractmethod
    @contextmanager
    def _open(self) -> Iterator[Any]:
        """A new connection, closed on exit."""

    def _begin(self, con: Any) -> None:  # noqa: B027 - engines that need an explicit BEGIN
        """Start a transaction on the connection."""

    @abstractmethod
    def append(self, con: Any, table: str, rows: pa.Table, temporary: bool = False) -> None:
        """Bulk-append Arrow rows to a table (a temporary one: of this session) inside the
        open transaction."""

    def append_stream(self, con: Any, table: str, batches: pa.RecordBatchReader) -> None:
        """Bulk-append a stream of Arrow rows inside the open transaction, some row groups
        at a time; engines that take the whole stream in one statement override this."""
        for rows in grouped(batches, batches.schema, STREAM_APPEND_ROWS):
            self.append(con, table, rows)

    def _lock_schema(self, con: Any) -> None:  # noqa: B027 - engines with concurrent DDL
        """Keep two processes creating the tables at once from colliding."""

    def days_sharing_ids(self, con: Any, table: str, key: str, day: dt.date,
                         verify: bool = False) -> list[dt.date] | None:
        """The other days that may hold an id of the day's rows, for a search of copies to
        look at; None: every day. `verify`: do not trust what the day's load stored to
        narrow them down."""
        return None

    def record_id_hashes(self, con: Any, table: str, day: dt.date,  # noqa: B027 - where
                         hashes: np.ndarray, load_id: str,  # `records_id_hashes`
                         replacing: bool = True) -> None:
        """The hashes (`SeenIds.storable`, sorted) of the ids `day` of `table` holds, written
        by `load_id`: all of them (`replacing` its record), or of rows restored to it."""

    def take_turn_to_load(self, con: Any, table: str) -> None:  # noqa: B027 - optional hook
        """First thing in a day's load of `table`: wait for other loads of it to end, on an
        engine that lets them run at once."""

    def catch_up(self, con: Any, table: str) -> None:  # noqa: B027 - optional hook
        """Before a day's rows are replaced: bring up to date what the engine keeps beside
        the rows that earlier loads wrote (index summaries, records), where it lets that lag."""

    def id_index_fit(self, table: str, id_column: str) -> CacheFit | None:
        """The index on a table's ids against the cache that serves it, where the engine
        keeps one up as rows arrive (PostgreSQL); None elsewhere."""
        return None

    def refresh_statistics(self, con: Any, table: str,  # noqa: B027 - optional hook
                           columns: Sequence[str]) -> None:
        """After a bulk append, before queries that join the table with itself on these
        columns."""

    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run SQL written with `?` placeholders; engines that spell them otherwise override."""
        cur = con.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def fetch_arrow(self, con: Any, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """`execute`'s rows as Arrow: many rows, without a Python object per value on the
        way (PostgreSQL's driver: 245k rows of six columns fetched in 7 s as tuples)."""
        return con.sql(sql, params=list(params)).to_arrow_table()

    @contextmanager
    def session(self) -> Iterator[None]:
        """Hold one connection across many operations (a backfill's days): opening and
        closing one per operation costs more than a small day's load."""
        if self._session is not None:
            yield
            return
        with self._open() as con:
            self._session = con
            try:
                yield
            finally:
                self._session = None

    def distinct_ids_sql(self, column: str) -> str:
        """SQL with as many distinct values as `column` has distinct ids, or fewer, never
        more: here the ids themselves, bytewise (a database's collation would make them
        dearer to sort)."""
        return f'{column} COLLATE "C"'

    def reads_beside(self, con: Any) -> bool:
        """Whether a read on a connection of its own (`beside`) may run while `con` reads,
        and see the same rows: on a server whose other connection works at the same time,
        while `con`'s transaction has written nothing."""
        return False

    @contextmanager
    def beside(self) -> Iterator[Any]:
        """A connection of its own for reads of committed rows, where `reads_beside`."""
        raise NotImplementedError(f"{type(self).__name__} reads on one connection")
        yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every operation in the block in one transaction, committed when the block ends and
        rolled back if it raises: a commit flushes the log, so what a day derives is written
        with one, not one per table. (Iceberg commits table by table at the end: a failure
        there can leave the tables committed before it.)"""
        if self._joined is not None:
            yield
            return
        with self.connect() as con:
            self._joined = con
            try:
                yield
            finally:
                self._joined = None

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A transaction: commits when the block ends, rolls back if it raises; inside
        `transaction()`, that one."""
        if self._joined is not None:
            yield self._joined
            return
        self.ensure_tables()
        with self._transaction() as con:
            yield con

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with contextlib.ExitStack() as stack:
            con = self._session or stack.enter_context(self._open())
            self._begin(con)
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def ensure_tables(self) -> None:
        """Create the tables on first use (once per process)."""
        if self._tables_ready:
            return
        with self._transaction() as con:
            self._lock_schema(con)
            existing: dict[str, set[str]] = {}
            for table, column in self.execute(
                    con, "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema()"):
                existing.setdefault(table, set()).add(column)
            for table in ALL_TABLES:
                for statement in table.ddl(self.column_definition,
                                           existing.get(table.name, set())):
                    self.execute(con, statement)
        self._tables_ready = True

    def column_definition(self, column: Column) -> str:
        """A column as this engine's CREATE TABLE spells it."""
        return column.definition

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.connect() as con:
            return self.execute(con, sql, params)

    def replace_rows(self, table: Table, where: dict[str, Any], rows: pa.Table) -> None:
        """Replace the rows matching `where` (column = value) with `rows`, in one transaction."""
        condition = " AND ".join(f"{column} = ?" for column in where)
        with self.connect() as con:
            self.execute(con, f"DELETE FROM {table.name} WHERE {condition}",
                         tuple(where.values()))
            if rows.num_rows:
                self.append(con, table.name, rows)


def among_days(column: str, days: list[dt.date] | None) -> tuple[str, tuple[dt.date, ...]]:
    """A condition keeping `column` to `days` (every day for None), with its parameters."""
    if days is None:
        return "", ()
    return f" AND {column} IN ({', '.join('?' * len(days)) or 'NULL'})", tuple(days)


def other_days(column: str, day: dt.date) -> tuple[str, tuple[dt.date, dt.date]]:
    """A condition keeping `column` off `day`, with its parameters: two ranges, which an
    index on the date can serve (PostgreSQL's BRIN, once summarised, and DuckDB's zone maps
    pass over the day's own rows); `<>` can only be checked row by row. With no other day
    loaded, PostgreSQL sees that there are none to look at (a 1M-row day's ids on other
    days: 0.21 s against 0.63 s for a hash join of the day with itself); with other days it
    reads them all either way."""
    return f"({column} < ? OR {column} > ?)", (day, day)


def as_date(value: Any) -> dt.date:
    """A date as a warehouse returns it (a date, or its ISO text)."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))

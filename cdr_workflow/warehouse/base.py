"""The warehouse interface and the SQL both engines share.

A day's load runs in one transaction: it deletes the day's rows of that kind, appends the new
rows and rejects, moves later copies of an id to the rejects, writes the `cdr_files` ledger,
and checks `rows_read = rows_loaded + rows_rejected` before committing. Engines differ only in
how they connect, bulk-append Arrow data and spell parameters.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

from cdr_workflow.layouts import (
    KINDS,
    arrow_schema,
    event_time_column,
    id_column,
    table_columns,
    table_name,
)
from cdr_workflow.reader import Reject

DUPLICATE_OTHER_DAY = "duplicate id, already loaded for another day"
DUPLICATE_SAME_DAY = "duplicate id, earlier in the same day"

AmountKey = tuple[str | None, str | None]  # (currency, application key)


@dataclass(frozen=True)
class FileLedger:
    """What the loader knows of one file before the warehouse counts its rows."""

    kind: str
    cdr_date: dt.date
    source_file: str
    source_uri: str
    size_bytes: int
    fingerprint: str
    rows_read: int


@dataclass(frozen=True)
class FileResult:
    source_file: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int


@dataclass(frozen=True)
class DayFacts:
    """Raw figures of one kind and day, read back from the warehouse for reconciliation."""

    kind: str
    cdr_date: dt.date
    files: list[dict[str, Any]]
    reject_reasons: dict[str, int]
    warehouse_amounts: dict[AmountKey, Decimal]
    file_amounts: dict[AmountKey, Decimal]
    outcome_mix: dict[tuple[str | None, str | None], int]
    late_before: int
    late_after: int
    duplicates_of_other_days: int
    missing_days_before: list[dt.date]
    duplicate_ids_in_table: int


def _ddl(kind: str) -> str:
    cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in table_columns(kind))
    return f"CREATE TABLE IF NOT EXISTS {table_name(kind)} (\n  {cols}\n)"


SUPPORT_DDL = (
    """CREATE TABLE IF NOT EXISTS cdr_rejects (
  kind VARCHAR, cdr_date DATE, source_file VARCHAR, source_line BIGINT,
  raw_line VARCHAR, reasons VARCHAR, load_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS cdr_files (
  kind VARCHAR, cdr_date DATE, source_file VARCHAR, source_uri VARCHAR, size_bytes BIGINT,
  fingerprint VARCHAR, rows_read BIGINT, rows_loaded BIGINT, rows_rejected BIGINT,
  amount_totals VARCHAR, load_id VARCHAR, loaded_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS cdr_expected (
  kind VARCHAR, cdr_date DATE, id VARCHAR, expected_time TIMESTAMPTZ, amount DECIMAL(18, 6),
  currency VARCHAR, source_file VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS cdr_expected_match (
  kind VARCHAR, cdr_date DATE, id VARCHAR, status VARCHAR, detail VARCHAR,
  cdr_loaded_date DATE, computed_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS cdr_kpis_daily (
  kind VARCHAR, cdr_date DATE, dimension VARCHAR, dimension_value VARCHAR, measure VARCHAR,
  value DECIMAL(38, 6))""",
    """CREATE TABLE IF NOT EXISTS cdr_signals_daily (
  kind VARCHAR, cdr_date DATE, dimension VARCHAR, dimension_value VARCHAR, volume BIGINT,
  trailing_median DOUBLE PRECISION, success_rate DOUBLE PRECISION,
  norm_success_rate DOUBLE PRECISION, flag VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS cdr_billing_monthly (
  month DATE, kind VARCHAR, currency VARCHAR, application_key VARCHAR, product VARCHAR,
  items BIGINT, amount DECIMAL(38, 6), month_to_date BOOLEAN, computed_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS cdr_reconciliation_daily (
  kind VARCHAR, cdr_date DATE, measure VARCHAR, dimension VARCHAR,
  value DECIMAL(38, 6), reference_value DECIMAL(38, 6), matches BOOLEAN,
  computed_at TIMESTAMPTZ)""",
)


class Warehouse(ABC):
    """One warehouse: DuckDB (embedded) or PostgreSQL, same tables, same invariants."""

    _session: Any = None  # the connection held open by `session()`, if any
    _tables_ready = False

    @abstractmethod
    @contextmanager
    def _open(self) -> Iterator[Any]:
        """A new connection, closed on exit."""

    def _begin(self, con: Any) -> None:  # noqa: B027 - engines that need an explicit BEGIN
        """Start a transaction on the connection."""

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

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A transaction: commits when the block ends, rolls back if it raises."""
        with contextlib.ExitStack() as stack:
            con = self._session or stack.enter_context(self._open())
            self._begin(con)
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    @abstractmethod
    def _append(self, con: Any, table: str, rows: pa.Table) -> None:
        """Bulk-append Arrow rows to a table, matching columns by name."""

    def _refresh_statistics(self, con: Any, table: str) -> None:  # noqa: B027 - optional hook
        """After a bulk append, before the queries that join the table with itself."""

    @property
    @abstractmethod
    def display_url(self) -> str:
        """Where the warehouse is, without credentials."""

    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run SQL written with `?` placeholders; engines that spell them otherwise override."""
        cur = con.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def ensure_tables(self) -> None:
        """Create the tables on first use (once per process)."""
        if self._tables_ready:
            return
        with self.connect() as con:
            for kind in KINDS:
                self.execute(con, _ddl(kind))
            for ddl in SUPPORT_DDL:
                self.execute(con, ddl)
        self._tables_ready = True

    @contextmanager
    def day_load(self, kind: str, day: dt.date, load_id: str) -> Iterator[DayLoad]:
        """One transaction replacing a kind's day. Commits on success, rolls back on error."""
        self.ensure_tables()
        with self.connect() as con:
            load = DayLoad(self, con, kind, day, load_id)
            load.begin()
            yield load
            load.finish()

    def day_facts(self, kind: str, day: dt.date, start_date: dt.date) -> DayFacts:
        self.ensure_tables()
        with self.connect() as con:
            return _read_facts(self, con, kind, day, start_date)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self.ensure_tables()
        with self.connect() as con:
            return self.execute(con, sql, params)

    def replace_rows(self, table: str, where: dict[str, Any], rows: pa.Table) -> None:
        """Replace the rows matching `where` (column = value) with `rows`, in one transaction.
        Table and column names come from code, never from file contents."""
        self.ensure_tables()
        condition = " AND ".join(f"{column} = ?" for column in where)
        with self.connect() as con:
            self.execute(con, f"DELETE FROM {table} WHERE {condition}", tuple(where.values()))
            if rows.num_rows:
                self._append(con, table, rows)

    def replace_reconciliation(self, kind: str, day: dt.date, rows: list[tuple]) -> None:
        self.ensure_tables()
        with self.connect() as con:
            self.execute(con, "DELETE FROM cdr_reconciliation_daily "
                         "WHERE kind = ? AND cdr_date = ?", (kind, day))
            self._append(con, "cdr_reconciliation_daily", _reconciliation_table(rows))


class DayLoad:
    """The open transaction of one kind-day load; see `Warehouse.day_load`.

    Rows are appended straight into the table (the day was deleted first, in the same
    transaction); `finish` then moves every later copy of an id to the rejects.
    """

    def __init__(self, warehouse: Warehouse, con: Any, kind: str, day: dt.date, load_id: str):
        self.warehouse, self.con, self.kind, self.day, self.load_id = (
            warehouse, con, kind, day, load_id)
        self.table = table_name(kind)
        self.schema = arrow_schema(kind)
        self.ledgers: list[FileLedger] = []
        self.file_amounts: dict[str, dict[AmountKey, Decimal]] = {}
        self.results: list[FileResult] = []

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.warehouse.execute(self.con, sql, params)

    def begin(self) -> None:
        self._run(f"DELETE FROM {self.table} WHERE cdr_date = ?", (self.day,))
        for table in ("cdr_rejects", "cdr_files"):
            self._run(f"DELETE FROM {table} WHERE kind = ? AND cdr_date = ?", (self.kind, self.day))

    def add_rows(self, source_file: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        rows = self._with_lineage(source_file, rows)
        totals = self.file_amounts.setdefault(source_file, {})
        for key, amount in amount_totals(rows).items():
            totals[key] = totals.get(key, Decimal(0)) + amount
        self.warehouse._append(self.con, self.table, rows)

    def add_rejects(self, source_file: str, rejects: list[Reject]) -> None:
        if not rejects:
            return
        self.warehouse._append(self.con, "cdr_rejects", pa.table({
            "kind": [self.kind] * len(rejects),
            "cdr_date": pa.array([self.day] * len(rejects), pa.date32()),
            "source_file": [source_file] * len(rejects),
            "source_line": pa.array([r.line for r in rejects], pa.int64()),
            "raw_line": [r.raw_line for r in rejects],
            "reasons": ["; ".join(r.reasons) for r in rejects],
            "load_id": [self.load_id] * len(rejects),
        }))

    def add_file(self, ledger: FileLedger) -> None:
        self.ledgers.append(ledger)

    def _with_lineage(self, source_file: str, rows: pa.Table) -> pa.Table:
        n = rows.num_rows
        constants = {"cdr_date": pa.repeat(pa.scalar(self.day, pa.date32()), n),
                     "source_file": pa.repeat(pa.scalar(source_file), n),
                     "load_id": pa.repeat(pa.scalar(self.load_id), n)}
        columns = [rows.column(f.name) if f.name in rows.column_names else
                   constants.get(f.name, pa.nulls(n, f.type)) for f in self.schema]
        return pa.Table.from_arrays(columns, schema=self.schema)

    def finish(self) -> None:
        self.warehouse._refresh_statistics(self.con, self.table)
        self._reject_duplicates()
        self.results = [self._write_ledger(ledger) for ledger in self.ledgers]

    def _reject_duplicates(self) -> None:
        """Every later copy of an id becomes a reject naming where the original is."""
        key = id_column(self.kind)
        day_params = (self.kind, self.day, DUPLICATE_OTHER_DAY, self.load_id, self.day)
        self._run(f"""INSERT INTO cdr_rejects
            SELECT CAST(? AS VARCHAR), CAST(? AS DATE), n.source_file, n.source_line, NULL,
                   CAST(? AS VARCHAR) || ': ' || n.{key} || ' is in ' || o.source_file
                     || ' line ' || CAST(o.source_line AS VARCHAR)
                     || ' (cdr_date ' || CAST(o.cdr_date AS VARCHAR) || ')', CAST(? AS VARCHAR)
            FROM {self.table} n JOIN {self.table} o ON o.{key} = n.{key}
              AND o.cdr_date <> n.cdr_date
            WHERE n.cdr_date = ?""", day_params)
        self._run(f"""INSERT INTO cdr_rejects
            SELECT CAST(? AS VARCHAR), CAST(? AS DATE), source_file, source_line, NULL,
                   CAST(? AS VARCHAR) || ': ' || {key} || ' is in ' || first_file
                     || ' line ' || CAST(first_line AS VARCHAR), CAST(? AS VARCHAR)
            FROM (SELECT source_file, source_line, {key},
                    FIRST_VALUE(source_file) OVER w AS first_file,
                    FIRST_VALUE(source_line) OVER w AS first_line,
                    ROW_NUMBER() OVER w AS copy_number
                  FROM {self.table} WHERE cdr_date = ? AND {key} IN (
                    SELECT {key} FROM {self.table} WHERE cdr_date = ?
                    GROUP BY {key} HAVING COUNT(*) > 1)
                  WINDOW w AS (PARTITION BY {key} ORDER BY source_file, source_line)) copies
            WHERE copy_number > 1""", (self.kind, self.day, DUPLICATE_SAME_DAY, self.load_id,
                                       self.day, self.day))
        # a line in the table that is also a reject can only be a duplicate just found
        duplicate = """FROM cdr_rejects r WHERE r.kind = ? AND r.cdr_date = ?
              AND r.source_file = t.source_file AND r.source_line = t.source_line"""
        if "amount" in self.schema.names:
            for source_file, currency, app_key, amount in self._run(
                    f"""SELECT t.source_file, t.currency, t.application_key, SUM(t.amount)
                    FROM {self.table} t WHERE t.cdr_date = ? AND t.amount IS NOT NULL
                      AND EXISTS (SELECT 1 {duplicate}) GROUP BY 1, 2, 3""",
                    (self.day, self.kind, self.day)):
                self.file_amounts[source_file][(currency, app_key)] -= Decimal(amount)
        self._run(f"DELETE FROM {self.table} t WHERE t.cdr_date = ? AND EXISTS (SELECT 1 "
                  f"{duplicate})", (self.day, self.kind, self.day))

    def _write_ledger(self, ledger: FileLedger) -> FileResult:
        (loaded,), = self._run(
            f"SELECT COUNT(*) FROM {self.table} WHERE cdr_date = ? AND source_file = ?",
            (self.day, ledger.source_file))
        (rejected,), = self._run(
            "SELECT COUNT(*) FROM cdr_rejects WHERE kind = ? AND cdr_date = ? AND source_file = ?",
            (self.kind, self.day, ledger.source_file))
        if ledger.rows_read != loaded + rejected:
            raise RuntimeError(
                f"{ledger.source_file}: read {ledger.rows_read} lines but loaded {loaded} and "
                f"rejected {rejected}; rolling back rather than losing lines")
        totals = self.file_amounts.get(ledger.source_file, {})
        self._run("INSERT INTO cdr_files VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
            ledger.kind, ledger.cdr_date, ledger.source_file, ledger.source_uri,
            ledger.size_bytes, ledger.fingerprint, ledger.rows_read, loaded, rejected,
            encode_amounts(totals), self.load_id, dt.datetime.now(dt.UTC)))
        return FileResult(ledger.source_file, ledger.rows_read, loaded, rejected)


RECONCILIATION_SCHEMA = pa.schema([
    ("kind", pa.string()), ("cdr_date", pa.date32()), ("measure", pa.string()),
    ("dimension", pa.string()), ("value", pa.decimal128(38, 6)),
    ("reference_value", pa.decimal128(38, 6)), ("matches", pa.bool_()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])


def _reconciliation_table(rows: list[tuple]) -> pa.Table:
    def exact(value: object) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.000001"))

    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in RECONCILIATION_SCHEMA]
    columns[4] = [exact(v) for v in columns[4]]
    columns[5] = [exact(v) for v in columns[5]]
    return pa.Table.from_arrays([pa.array(c, f.type) for c, f in
                                 zip(columns, RECONCILIATION_SCHEMA, strict=True)],
                                schema=RECONCILIATION_SCHEMA)


def amount_totals(rows: pa.Table) -> dict[AmountKey, Decimal]:
    """Exact amount totals per (currency, application key) of Arrow rows."""
    if "amount" not in rows.column_names:
        return {}
    grouped = rows.group_by(["currency", "application_key"], use_threads=False).aggregate(
        [("amount", "sum")]).to_pylist()
    return {(g["currency"], g["application_key"]): g["amount_sum"] for g in grouped
            if g["amount_sum"] is not None}


def encode_amounts(totals: dict[AmountKey, Decimal]) -> str:
    return json.dumps([[c, k, str(v)] for (c, k), v in sorted(
        totals.items(), key=lambda item: (str(item[0][0]), str(item[0][1])))])


def decode_amounts(text: str | None) -> dict[AmountKey, Decimal]:
    return {(c, k): Decimal(v) for c, k, v in json.loads(text or "[]")}


def _read_facts(wh: Warehouse, con: Any, kind: str, day: dt.date, start: dt.date) -> DayFacts:
    def run(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return wh.execute(con, sql, params)

    table, key, event = table_name(kind), id_column(kind), event_time_column(kind)
    file_cols = ["source_file", "source_uri", "size_bytes", "fingerprint", "rows_read",
                 "rows_loaded", "rows_rejected", "amount_totals", "load_id"]
    files = [dict(zip(file_cols, r, strict=True)) for r in run(
        f"SELECT {', '.join(file_cols)} FROM cdr_files WHERE kind = ? AND cdr_date = ? "
        "ORDER BY source_file", (kind, day))]
    file_amounts: dict[AmountKey, Decimal] = {}
    for f in files:
        for k, v in decode_amounts(f.pop("amount_totals")).items():
            file_amounts[k] = file_amounts.get(k, Decimal(0)) + v
    reasons: dict[str, int] = {}
    for text, count in run("SELECT reasons, COUNT(*) FROM cdr_rejects WHERE kind = ? AND "
                           "cdr_date = ? GROUP BY reasons", (kind, day)):
        for reason in text.split("; "):
            rule = reason.split(":")[0]
            reasons[rule] = reasons.get(rule, 0) + count
    amounts = {}
    if "amount" in arrow_schema(kind).names:
        amounts = {(c, k): Decimal(v) for c, k, v in run(
            f"SELECT currency, application_key, SUM(amount) FROM {table} WHERE cdr_date = ? "
            "AND amount IS NOT NULL GROUP BY 1, 2", (day,))}
    mix = {(r, why): n for r, why, n in run(
        f"SELECT result, reason, COUNT(*) FROM {table} WHERE cdr_date = ? GROUP BY 1, 2", (day,))}
    (before, after), = run(
        f"""SELECT COUNT(*) FILTER (WHERE CAST({event} AT TIME ZONE 'UTC' AS DATE) < ?),
                   COUNT(*) FILTER (WHERE CAST({event} AT TIME ZONE 'UTC' AS DATE) > ?)
            FROM {table} WHERE cdr_date = ?""", (day, day, day))
    loaded_days = {r[0] for r in run(
        "SELECT DISTINCT cdr_date FROM cdr_files WHERE kind = ? AND cdr_date >= ? AND cdr_date < ?",
        (kind, start, day))}
    missing = [start + dt.timedelta(days=i) for i in range((day - start).days)
               if start + dt.timedelta(days=i) not in loaded_days]
    # ids of the day present twice: within the day, or also on another day (the same query
    # shapes as the load's own duplicate search, which stay within DuckDB's memory limit)
    (within,), = run(f"SELECT COUNT(*) FROM (SELECT {key} FROM {table} WHERE cdr_date = ? "
                     f"GROUP BY {key} HAVING COUNT(*) > 1) d", (day,))
    (across,), = run(f"SELECT COUNT(DISTINCT n.{key}) FROM {table} n JOIN {table} o "
                     f"ON o.{key} = n.{key} AND o.cdr_date <> n.cdr_date WHERE n.cdr_date = ?",
                     (day,))
    return DayFacts(
        kind=kind, cdr_date=day, files=files, reject_reasons=reasons,
        warehouse_amounts=amounts, file_amounts=file_amounts, outcome_mix=mix,
        late_before=before, late_after=after,
        duplicates_of_other_days=reasons.get(DUPLICATE_OTHER_DAY, 0),
        missing_days_before=missing, duplicate_ids_in_table=within + across)

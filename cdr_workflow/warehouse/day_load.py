"""One kind's day replaced in one transaction, with every later copy of an id rejected.

The day's rows, rejects and ledger are deleted first; rows are then appended straight into the
table, and `finish` moves every later copy of an id to the rejects (naming where the original
is), writes the `cdr_files` ledger and checks `rows_read = rows_loaded + rows_rejected` before
the transaction commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from cdr_workflow.header import SchemaDrift
from cdr_workflow.kinds import Kind
from cdr_workflow.reader import Reject
from cdr_workflow.warehouse.base import Warehouse
from cdr_workflow.warehouse.tables import FILES, REJECTS, table_of

DUPLICATE_OTHER_DAY = "duplicate id, already loaded for another day"
DUPLICATE_SAME_DAY = "duplicate id, earlier in the same day"

AmountKey = tuple[str | None, str | None]  # (currency, application key)


@dataclass(frozen=True)
class FileLoad:
    """One file of a day's load, as the ledger `cdr_files` records it."""

    kind: str
    cdr_date: dt.date
    source_file: str
    source_uri: str
    size_bytes: int
    fingerprint: str
    rows_read: int
    rows_loaded: int = 0
    rows_rejected: int = 0
    amount_totals: dict[AmountKey, Decimal] = field(default_factory=dict)
    schema_drift: SchemaDrift = SchemaDrift()

    @property
    def balances(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_rejected


@contextmanager
def day_load(warehouse: Warehouse, kind: Kind, day: dt.date, load_id: str
             ) -> Iterator[DayLoad]:
    """One transaction replacing a kind's day. Commits on success, rolls back on error."""
    with warehouse.connect() as con:
        load = DayLoad(warehouse, con, kind, day, load_id)
        load.begin()
        yield load
        load.finish()


class DayLoad:
    """The open transaction of one kind-day load; see `day_load`."""

    def __init__(self, warehouse: Warehouse, con: Any, kind: Kind, day: dt.date, load_id: str):
        self.warehouse, self.con, self.kind, self.day, self.load_id = (
            warehouse, con, kind, day, load_id)
        self.table = table_of(kind)
        self.files: list[FileLoad] = []
        self._amounts: dict[str, dict[AmountKey, Decimal]] = {}

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.warehouse.execute(self.con, sql, params)

    def begin(self) -> None:
        self._run(f"DELETE FROM {self.table.name} WHERE cdr_date = ?", (self.day,))
        for table in (REJECTS, FILES):
            self._run(f"DELETE FROM {table.name} WHERE kind = ? AND cdr_date = ?",
                      (self.kind.name, self.day))

    def add_rows(self, source_file: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        self.warehouse.append(self.con, self.table.name, self._with_lineage(source_file, rows))

    def add_rejects(self, source_file: str, rejects: list[Reject]) -> None:
        if not rejects:
            return
        self.warehouse.append(self.con, REJECTS.name, REJECTS.rows(
            [{"source_line": r.line, "raw_line": r.raw_line, "reasons": "; ".join(r.reasons)}
             for r in rejects],
            {"kind": self.kind.name, "cdr_date": self.day, "source_file": source_file,
             "load_id": self.load_id}))

    def add_file(self, file: FileLoad) -> None:
        """A file read in full; its `amount_totals` are what its text holds for the lines
        accepted, read independently of the rows appended."""
        self.files.append(file)
        self._amounts[file.source_file] = dict(file.amount_totals)

    def _with_lineage(self, source_file: str, rows: pa.Table) -> pa.Table:
        n = rows.num_rows
        constants = {"cdr_date": pa.repeat(pa.scalar(self.day, pa.date32()), n),
                     "source_file": pa.repeat(pa.scalar(source_file), n),
                     "load_id": pa.repeat(pa.scalar(self.load_id), n)}
        schema = self.table.arrow_schema
        columns = [rows.column(f.name) if f.name in rows.column_names else
                   constants.get(f.name, pa.nulls(n, f.type)) for f in schema]
        return pa.Table.from_arrays(columns, schema=schema)

    def finish(self) -> None:
        self.warehouse.refresh_statistics(self.con, self.table.name)
        self._reject_duplicates()
        self.files = [self._write_ledger(f) for f in self.files]

    def _reject_duplicates(self) -> None:
        """Every later copy of an id becomes a reject naming where the original is."""
        table, key, kind = self.table.name, self.kind.id_column, self.kind.name
        self._run(f"""INSERT INTO cdr_rejects
            SELECT CAST(? AS VARCHAR), CAST(? AS DATE), n.source_file, n.source_line, NULL,
                   CAST(? AS VARCHAR) || ': ' || n.{key} || ' is in ' || o.source_file
                     || ' line ' || CAST(o.source_line AS VARCHAR)
                     || ' (cdr_date ' || CAST(o.cdr_date AS VARCHAR) || ')', CAST(? AS VARCHAR)
            FROM {table} n JOIN {table} o ON o.{key} = n.{key}
              AND o.cdr_date <> n.cdr_date
            WHERE n.cdr_date = ?""", (kind, self.day, DUPLICATE_OTHER_DAY, self.load_id,
                                      self.day))
        self._run(f"""INSERT INTO cdr_rejects
            SELECT CAST(? AS VARCHAR), CAST(? AS DATE), source_file, source_line, NULL,
                   CAST(? AS VARCHAR) || ': ' || {key} || ' is in ' || first_file
                     || ' line ' || CAST(first_line AS VARCHAR), CAST(? AS VARCHAR)
            FROM (SELECT source_file, source_line, {key},
                    FIRST_VALUE(source_file) OVER w AS first_file,
                    FIRST_VALUE(source_line) OVER w AS first_line,
                    ROW_NUMBER() OVER w AS copy_number
                  FROM {table} WHERE cdr_date = ? AND {key} IN (
                    SELECT {key} FROM {table} WHERE cdr_date = ?
                    GROUP BY {key} HAVING COUNT(*) > 1)
                  WINDOW w AS (PARTITION BY {key} ORDER BY source_file, source_line)) copies
            WHERE copy_number > 1""", (kind, self.day, DUPLICATE_SAME_DAY, self.load_id,
                                       self.day, self.day))
        # a line in the table that is also a reject can only be a duplicate just found
        duplicate = """FROM cdr_rejects r WHERE r.kind = ? AND r.cdr_date = ?
              AND r.source_file = t.source_file AND r.source_line = t.source_line"""
        if self.kind.has_amounts:
            for source_file, currency, app_key, amount in self._run(
                    f"""SELECT t.source_file, t.currency, t.application_key, SUM(t.amount)
                    FROM {table} t WHERE t.cdr_date = ? AND t.amount IS NOT NULL
                      AND EXISTS (SELECT 1 {duplicate}) GROUP BY 1, 2, 3""",
                    (self.day, kind, self.day)):
                totals = self._amounts.setdefault(source_file, {})
                totals[(currency, app_key)] = (totals.get((currency, app_key), Decimal(0))
                                               - Decimal(amount))
        self._run(f"DELETE FROM {table} t WHERE t.cdr_date = ? AND EXISTS (SELECT 1 "
                  f"{duplicate})", (self.day, kind, self.day))

    def _write_ledger(self, file: FileLoad) -> FileLoad:
        (loaded,), = self._run(
            f"SELECT COUNT(*) FROM {self.table.name} WHERE cdr_date = ? AND source_file = ?",
            (self.day, file.source_file))
        (rejected,), = self._run(
            "SELECT COUNT(*) FROM cdr_rejects WHERE kind = ? AND cdr_date = ? AND source_file = ?",
            (self.kind.name, self.day, file.source_file))
        file = dataclasses.replace(file, rows_loaded=loaded, rows_rejected=rejected,
                                   amount_totals=self._amounts.get(file.source_file, {}))
        if not file.balances:
            raise RuntimeError(
                f"{file.source_file}: read {file.rows_read} lines but loaded {loaded} and "
                f"rejected {rejected}; rolling back rather than losing lines")
        self.warehouse.append(self.con, FILES.name, FILES.rows([{
            **{k: v for k, v in vars(file).items() if k in FILES.column_names},
            "amount_totals": encode_amounts(file.amount_totals),
            "schema_drift": encode_drift(file.schema_drift),
            "load_id": self.load_id, "loaded_at": dt.datetime.now(dt.UTC)}]))
        return file


def encode_amounts(totals: dict[AmountKey, Decimal]) -> str:
    return json.dumps([[c, k, str(v)] for (c, k), v in sorted(
        totals.items(), key=lambda item: (str(item[0][0]), str(item[0][1])))])


def decode_amounts(text: str | None) -> dict[AmountKey, Decimal]:
    return {(c, k): Decimal(v) for c, k, v in json.loads(text or "[]")}


def encode_drift(drift: SchemaDrift) -> str | None:
    return json.dumps({"missing": list(drift.missing), "unknown": list(drift.unknown),
                       "renames": drift.renames}) if drift else None


def decode_drift(text: str | None) -> SchemaDrift:
    data = json.loads(text) if text else {}
    return SchemaDrift(tuple(data.get("missing", ())), tuple(data.get("unknown", ())),
                       data.get("renames", {}))

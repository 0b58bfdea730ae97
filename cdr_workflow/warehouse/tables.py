"""Every warehouse table, declared once: columns, Arrow types and descriptions.

From a declaration come the DDL (the same SQL runs on DuckDB and PostgreSQL), the Arrow schema
that rows are built with, and the column list the UI shows. Table and column names come from
here only, never from file contents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from cdr_workflow.kinds import KINDS, Kind
from cdr_workflow.layouts import AMOUNT_TYPE, TIMESTAMP_TYPE

TOTAL_TYPE = pa.decimal128(38, 6)  # sums of amounts: exact, with room for a year of them


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str = ""
    # values with nothing in common (random ids): compressing them costs an engine's load
    # more than the space it saves, so it may store them as they are
    random: bool = False

    @property
    def sql_type(self) -> str:
        return sql_type(self.type)

    @property
    def definition(self) -> str:
        return f"{self.name} {self.sql_type}"


def sql_type(arrow: pa.DataType) -> str:
    """The SQL spelling both engines accept for an Arrow type."""
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision}, {arrow.scale})"
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMPTZ"
    return {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.date32(): "DATE",
            pa.float64(): "DOUBLE PRECISION", pa.bool_(): "BOOLEAN"}[arrow]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    description: str
    partition_column: str = "cdr_date"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])

    def ddl(self, defined: Callable[[Column], str], existing: set[str] = frozenset()
            ) -> list[str]:
        """Create the table, or add the columns a table made by an earlier version lacks
        (`existing`: its columns now), each column as `defined` spells it for the engine.
        Nothing when it is complete: DDL locks the table."""
        if not existing:
            body = ",\n  ".join(defined(c) for c in self.columns)
            return [f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {body}\n)"]
        return [f"ALTER TABLE {self.name} ADD COLUMN IF NOT EXISTS {defined(c)}"
                for c in self.columns if c.name not in existing]

    def rows(self, records: Sequence[Mapping[str, Any]],
             constants: Mapping[str, Any] | None = None) -> pa.Table:
        """Arrow rows of this table from dicts (missing keys are null); `constants` fill a
        column with one value for every row."""
        constants = constants or {}
        return pa.Table.from_arrays(
            [pa.array([constants[c.name]] * len(records) if c.name in constants
                      else [r.get(c.name) for r in records], c.type) for c in self.columns],
            schema=self.arrow_schema)

    def rows_of(self, columns: pa.Table, constants: Mapping[str, Any]) -> pa.Table:
        """Arrow rows of this table from Arrow `columns` (by name), `constants` filling the
        others with one value for every row (null where neither gives a column)."""
        n = columns.num_rows
        return pa.Table.from_arrays(
            [columns.column(c.name) if c.name in columns.column_names
             else pa.repeat(pa.scalar(constants.get(c.name), c.type), n) for c in self.columns],
            schema=self.arrow_schema)


TEXT, INT, DATE, FLOAT, BOOL = pa.string(), pa.int64(), pa.date32(), pa.float64(), pa.bool_()

# Columns every CDR table carries beyond the Sinch fields.
LINEAGE_COLUMNS: tuple[Column, ...] = (
    Column("cdr_date", DATE, "Day the file covers (the Dagster partition)"),
    Column("source_file", TEXT, "File the row came from, relative to the drop folder"),
    Column("source_line", INT, "Line in that file where the record starts (1-based)"),
    Column("load_id", TEXT, "Load that wrote the row (the Dagster run id)"),
    Column("extra_fields", TEXT, "Columns the layout does not know, as JSON"),
    Column("id_hash", INT, "DuckDB's 64-bit hash of the id, halved to fit: on DuckDB the "
           "search for an id on other days compares these before the ids (left NULL on the "
           "other warehouses: PostgreSQL records each day's hashes in cdr_id_hashes)"),
)


def cdr_table(kind: Kind) -> Table:
    """A kind's table: the union of its layouts' fields, then lineage."""
    columns: dict[str, Column] = {}
    if kind.has_call_types:
        columns["call_type"] = Column("call_type", TEXT, ", ".join(
            lay.name for lay in kind.layouts))
    for layout in kind.layouts:
        for f in layout.fields:
            columns.setdefault(f.column, Column(f.column, f.type.arrow, f.description,
                                                random=f.column == kind.id_column))
    return Table(kind.table, (*columns.values(), *LINEAGE_COLUMNS),
                 f"One row per {kind.name} CDR that passed its Sinch layout's schema")


def held_table(kind: Kind) -> Table:
    """Later copies of ids, kept whole beside their rejects: if the original's day is
    re-delivered without the id, the held copy takes its place."""
    cdr = cdr_table(kind)
    return Table(f"{cdr.name}_held", (*cdr.columns, Column(
        "held_because", TEXT, "The duplicate reason, naming where the original is")),
        f"Later copies of {kind.name} ids, held while their original is loaded")


REJECTS = Table("cdr_rejects", (
    Column("kind", TEXT), Column("cdr_date", DATE), Column("source_file", TEXT),
    Column("source_line", INT, "Line where the rejected record starts"),
    Column("raw_line", TEXT, "The record as it was in the file"),
    Column("reasons", TEXT, "Every rule it broke, '; '-separated, each quoting its value"),
    Column("load_id", TEXT)), "One row per rejected line")

FILES = Table("cdr_files", (
    Column("kind", TEXT), Column("cdr_date", DATE), Column("source_file", TEXT),
    Column("source_uri", TEXT), Column("size_bytes", INT),
    Column("fingerprint", TEXT, "Changes when the file is replaced (size and mtime, or ETag)"),
    Column("rows_read", INT), Column("rows_loaded", INT), Column("rows_rejected", INT),
    Column("amount_totals", TEXT, "Exact amount totals per currency × application key (JSON)"),
    Column("load_id", TEXT), Column("loaded_at", TIMESTAMP_TYPE),
    Column("schema_drift", TEXT, "Header vs layout: missing and unknown columns, likely "
           "renames (JSON); NULL when the header matches")),
    "One row per loaded file: the ledger where read = loaded + rejected")

EXPECTED = Table("cdr_expected", (
    Column("kind", TEXT), Column("cdr_date", DATE), Column("id", TEXT),
    Column("expected_time", TIMESTAMP_TYPE), Column("amount", AMOUNT_TYPE),
    Column("currency", TEXT), Column("source_file", TEXT)),
    "The customer's own records, as delivered")

EXPECTED_MATCH = Table("cdr_expected_match", (
    Column("kind", TEXT), Column("cdr_date", DATE), Column("id", TEXT),
    Column("status", TEXT, "matched, matched_late, amount_mismatch, time_skew, "
         "missing_in_cdrs or unexpected_in_cdrs"),
    Column("detail", TEXT), Column("cdr_loaded_date", DATE, "Day whose file held the CDR"),
    Column("computed_at", TIMESTAMP_TYPE)), "One row per own record or unexpected CDR, per day")

KPIS = Table("cdr_kpis_daily", (
    Column("kind", TEXT), Column("cdr_date", DATE), Column("dimension", TEXT),
    Column("dimension_value", TEXT), Column("measure", TEXT), Column("value", TOTAL_TYPE)),
    "One row per kind × day × dimension value × measure")

SIGNALS = Table("cdr_signals_daily", (
    Column("kind", TEXT), Column("cdr_date", DATE), Column("dimension", TEXT),
    Column("dimension_value", TEXT), Column("volume", INT), Column("trailing_median", FLOAT),
    Column("success_rate", FLOAT), Column("norm_success_rate", FLOAT), Column("flag", TEXT)),
    "One row per kind × day × signal dimension value")

BILLING = Table("cdr_billing_monthly", (
    Column("month", DATE), Column("kind", TEXT), Column("currency", TEXT),
    Column("application_key", TEXT), Column("product", TEXT, "Verification method or call type"),
    Column("items", INT), Column("amount", TOTAL_TYPE), Column("month_to_date", BOOL),
    Column("computed_at", TIMESTAMP_TYPE)),
    "Invoice lines: month × kind × currency × application key × product",
    partition_column="month")

RECONCILIATION = Table("cdr_reconciliation_daily", (
    Column("kind", TEXT), Column("cdr_date", DATE), Column("measure", TEXT),
    Column("dimension", TEXT),
    Column("value", TOTAL_TYPE), Column("reference_value", TOTAL_TYPE), Column("matches", BOOL),
    Column("computed_at", TIMESTAMP_TYPE)), "The figures of each daily reconciliation report")

CDR_TABLES: dict[str, Table] = {name: cdr_table(kind) for name, kind in KINDS.items()}
HELD_TABLES: dict[str, Table] = {name: held_table(kind) for name, kind in KINDS.items()}
SUPPORT_TABLES: tuple[Table, ...] = (REJECTS, FILES, EXPECTED, EXPECTED_MATCH, KPIS, SIGNALS,
                                     BILLING, RECONCILIATION)
ALL_TABLES: tuple[Table, ...] = (*CDR_TABLES.values(), *HELD_TABLES.values(), *SUPPORT_TABLES)


def table_of(kind: Kind) -> Table:
    return CDR_TABLES[kind.name]


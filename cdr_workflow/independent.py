"""The money a CDR file's text holds, read by DuckDB's own CSV reader.

The reconciliation compares the warehouse with these totals, so they must not come from our
reader: DuckDB parses the raw text on its own terms and only the Sinch field names (a contract,
not code) tell it which columns are the amount, the currency and the application key. A header
met again mid-file starts a new segment with its own column order.
"""

from __future__ import annotations

import csv
import functools
from decimal import Decimal
from pathlib import Path

import duckdb

from cdr_workflow.kinds import Kind
from cdr_workflow.warehouse.day_load import AmountKey

MONEY_FIELDS = ("Amount", "Currency", "ApplicationKey")


def text_amounts(path: Path, kind: Kind, skip_first_record: bool = False
                 ) -> dict[AmountKey, Decimal]:
    """Exact amount totals per (currency, application key) of every record in the file that
    DuckDB can read, by the column names of the header above it (or, without a header, by the
    one layout of that many fields). `skip_first_record` leaves out a first line that is a
    record rather than a header."""
    if not kind.has_amounts or path.stat().st_size == 0:
        return {}
    # as many columns as the first line: DuckDB drops lines with fewer fields and cuts those
    # with more, as our reader rejects both (their money is then on both sides or neither)
    width = _first_line_width(path)
    if width == 0:
        return {}
    columns = [f"c{i}" for i in range(width)]
    con = _engine().cursor()  # its own session; the in-memory database is opened once
    try:
        con.execute(
            "CREATE TEMP TABLE text AS SELECT row_number() OVER () AS n, * FROM read_csv(?, "
            "header = false, delim = ';', quote = '\"', escape = '\"', strict_mode = false, "
            "ignore_errors = true, auto_detect = false, max_line_size = 67108864, columns = "
            f"{{{', '.join(repr(c) + ': ' + repr('VARCHAR') for c in columns)}}})",
            [str(path)])
        segments = _segments(con, columns, kind)
        if skip_first_record and segments and segments[0][0] == 1:
            segments[0] = (2, *segments[0][1:])
        totals: dict[AmountKey, Decimal] = {}
        for first, last, where in segments:
            if not {"amount", "currency", "applicationkey"} <= set(where):
                continue
            amount, currency, key = (where[n] for n in ("amount", "currency", "applicationkey"))
            for cur, app, total in con.execute(
                    f"SELECT NULLIF(TRIM({currency}), ''), NULLIF({key}, ''), "
                    f"SUM(TRY_CAST(REPLACE(TRIM({amount}), ',', '.') AS DECIMAL(38, 6))) "
                    "FROM text WHERE n BETWEEN ? AND ? GROUP BY 1, 2", [first, last]
            ).fetchall():
                if total is not None:
                    totals[(cur, app)] = totals.get((cur, app), Decimal(0)) + total
        return totals
    finally:
        con.close()


@functools.cache
def _engine() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:")


def _first_line_width(path: Path) -> int:
    """Fields in the first line that is not blank (0 for a file of blank lines)."""
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        for line in f:
            if line.strip():
                return len(next(csv.reader([line.lstrip("\ufeff")], delimiter=";"), []))
    return 0


def _segments(con: duckdb.DuckDBPyConnection, columns: list[str], kind: Kind
              ) -> list[tuple[int, int, dict[str, str]]]:
    """(first row, last row, normalised field name → column) per header segment. A header
    is a row with the id field's name in one of its columns (exact spellings: cheap to find)."""
    names = {f.sinch_name for lay in kind.layouts for f in lay.fields
             if f.column == lay.id_column} | {kind.id_column}
    spellings = ", ".join(sorted(repr(v) for n in names for v in (n, n.lower(), n.upper())))
    is_header = f"list_has_any([{', '.join(columns)}], [{spellings}])"
    headers = con.execute(f"SELECT n, {', '.join(columns)} FROM text WHERE {is_header} "
                          "ORDER BY n").fetchall()
    (last,) = con.execute("SELECT COALESCE(MAX(n), 0) FROM text").fetchone()
    if not headers:
        return [(1, last, _positional(kind, columns))]
    bounds = [h[0] for h in headers] + [last + 1]
    return [(start + 1, end - 1, {_norm(name): columns[i] for i, name in enumerate(h[1:])
                                  if name})
            for h, start, end in zip(headers, bounds, bounds[1:], strict=False)]


def _positional(kind: Kind, columns: list[str]) -> dict[str, str]:
    """Without a header: the layout with as many fields as the first line, if only one."""
    fitting = [lay for lay in kind.layouts if len(lay.fields) == len(columns)]
    if len(fitting) != 1:
        return {}
    return {_norm(f.sinch_name): columns[i] for i, f in enumerate(fitting[0].fields)}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())

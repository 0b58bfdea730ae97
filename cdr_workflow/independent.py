"""The money a CDR file's text holds, read by DuckDB's own CSV reader.

The reconciliation compares the warehouse with these totals, so they must not come from our
reader: DuckDB parses the raw text on its own terms and only the Sinch field names (a contract,
not code) tell it which columns are the amount, the currency and the application key. A header
met again mid-file starts a new segment with its own column order.
"""

from __future__ import annotations

import csv
import functools
import tempfile
from decimal import Decimal
from pathlib import Path

import duckdb

from cdr_workflow.duckdb_connect import connect
from cdr_workflow.header import normalise, spellings
from cdr_workflow.kinds import Kind
from cdr_workflow.warehouse.day_load import AmountKey

PATTERN_CHARACTERS = frozenset("*?[{")  # read_csv takes a path holding these as a pattern


def readable_by_name(path: Path) -> bool:
    """Whether `text_amounts` reads exactly this file when given its path."""
    return not PATTERN_CHARACTERS & set(str(path))


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
    width = len(_first_fields(path))
    if width == 0:
        return {}
    columns = [f"c{i}" for i in range(width)]
    # DuckDB's default line size (2 MB): a bigger maximum makes it allocate 16 times that per
    # buffer (1 GiB for 64 MB) and scan slower; a longer record is a broken quote, rejected
    source = ("read_csv(?, header = false, delim = ';', quote = '\"', escape = '\"', "
              "strict_mode = false, ignore_errors = true, auto_detect = false, "
              "columns = {"
              + ", ".join(f"{c!r}: 'VARCHAR'" for c in columns) + "})")
    con = _engine().cursor()  # its own session; the in-memory database is opened once
    try:
        # one scan, when the first line's header is the only one
        totals = _single_segment(con, source, path, columns, kind, skip_first_record)
        if totals is not None:
            return totals
        con.execute(f"CREATE TEMP TABLE text AS SELECT row_number() OVER () AS n, * "
                    f"FROM {source}", [str(path)])
        segments = _segments(con, columns, kind)
        if skip_first_record and segments and segments[0][0] == 1:
            segments[0] = (2, *segments[0][1:])
        totals = {}
        for first, last, where in segments:
            for key, total in _sums(con, "text WHERE n BETWEEN ? AND ?", [first, last], where):
                totals[key] = totals.get(key, Decimal(0)) + total
        return totals
    finally:
        con.close()


def _single_segment(con: duckdb.DuckDBPyConnection, source: str, path: Path,
                    columns: list[str], kind: Kind, skip_first_record: bool
                    ) -> dict[AmountKey, Decimal] | None:
    """The totals in one scan, by the first line's header (or by position without one); None
    when more header lines are met, or a first record is to be left out, so the file must be
    read segment by segment."""
    first = _first_fields(path)
    header = {normalise(f): columns[i] for i, f in enumerate(first)}
    has_header = sum(name in _field_names(kind) for name in header) >= _header_names(columns)
    if skip_first_record and not has_header:
        return None
    where = header if has_header else _positional(kind, columns)
    if "amount" not in where:
        return {}
    # a header line names its fields, so it has one where the first has the amount, a
    # column this scan reads anyway (testing the id's instead: 0.09-0.12 s more on 1M
    # lines): rows with a name there are few, and only they are tested as header lines
    # (a second scan)
    named = f"TRIM({where['amount']}) IN ({_spelled(kind)})"
    groups = _grouped(con, source, [str(path)], where, f", COUNT(*) FILTER (WHERE {named})")
    if sum(headers for *_, headers in groups) > has_header:
        ((headers,),) = con.execute(f"SELECT COUNT(*) FROM {source} WHERE {named} AND "
                                    f"{_is_header(columns, kind)}", [str(path)]).fetchall()
        if headers > has_header:
            return None
    return {(cur, app): total for cur, app, total, _ in groups if total is not None}


def _sums(con: duckdb.DuckDBPyConnection, rows: str, params: list, where: dict[str, str]
          ) -> list[tuple[AmountKey, Decimal]]:
    if "amount" not in where:
        return []
    return [((cur, app), total) for cur, app, total in _grouped(con, rows, params, where)
            if total is not None]


def _grouped(con: duckdb.DuckDBPyConnection, rows: str, params: list, where: dict[str, str],
             more: str = "") -> list[tuple]:
    """Amount totals per currency × application key (and `more` aggregates) of `rows`."""
    # a file without the Currency or ApplicationKey column loads them as NULL: so here too
    amount, currency, key = (where.get(n, "NULL") for n in ("amount", "currency",
                                                           "applicationkey"))
    return con.execute(
        f"SELECT NULLIF(TRIM({currency}), ''), NULLIF({key}, ''), "
        f"SUM(TRY_CAST(REPLACE(TRIM({amount}), ',', '.') AS DECIMAL(38, 6))){more} "
        f"FROM {rows} GROUP BY 1, 2", params).fetchall()


@functools.cache
def _engine() -> duckdb.DuckDBPyConnection:
    # DuckDB's default would let a big file's reading take most of the machine's memory
    spill = Path(tempfile.gettempdir()) / "cdr-independent-spill"
    return connect(":memory:", config={"memory_limit": "256MB", "temp_directory": str(spill)})


def _first_fields(path: Path) -> list[str]:
    """The fields of the first record that is not a blank line (none for a file of blank
    lines); a quoted field may hold line breaks, so records are read, not lines (a quote that
    runs past the csv module's field limit: the first line split at every `;`)."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        try:
            for fields in csv.reader(f, delimiter=";"):
                if len(fields) > 1 or (fields and fields[0].strip()):
                    return fields
        except csv.Error:
            f.seek(0)
            return next((line for line in f if line.strip()), "").rstrip("\r\n").split(";")
    return []


def _names(kind: Kind) -> set[str]:
    """Every field's Sinch name and column name."""
    return {n for lay in kind.layouts for f in lay.fields for n in (f.sinch_name, f.column)}


@functools.cache
def _field_names(kind: Kind) -> frozenset[str]:
    return frozenset(normalise(n) for n in _names(kind))


def _header_names(columns: list[str]) -> int:
    """A header line names at least half its fields (and two), as the format has it."""
    return max(2, len(columns) // 2)


def _spelled(kind: Kind) -> str:
    """SQL list of the field names in their usual spellings (exact: cheap to find)."""
    return ", ".join(sorted(map(repr, spellings(_names(kind)))))


def _is_header(columns: list[str], kind: Kind) -> str:
    """SQL: the row is a header line, by the field names it holds (a record whose id happens
    to be a field's name is not one); rows without the id's name are passed over first."""
    ids = spellings({f.sinch_name for lay in kind.layouts for f in lay.fields
                     if f.column == lay.id_column} | {kind.id_column})
    fields = ", ".join(f"TRIM({c})" for c in columns)
    return (f"list_has_any([{', '.join(columns)}], [{', '.join(sorted(map(repr, ids)))}]) "
            f"AND len(list_intersect([{fields}], [{_spelled(kind)}])) >= {_header_names(columns)}")


def _segments(con: duckdb.DuckDBPyConnection, columns: list[str], kind: Kind
              ) -> list[tuple[int, int, dict[str, str]]]:
    """(first row, last row, normalised field name → column) per header segment. A header
    is a row with the id field's name in one of its columns (exact spellings: cheap to find)."""
    headers = con.execute(f"SELECT n, {', '.join(columns)} FROM text "
                          f"WHERE {_is_header(columns, kind)} "
                          "ORDER BY n").fetchall()
    (last,) = con.execute("SELECT COALESCE(MAX(n), 0) FROM text").fetchone()
    if not headers:
        return [(1, last, _positional(kind, columns))]
    bounds = [h[0] for h in headers] + [last + 1]
    return [(start + 1, end - 1, {normalise(name): columns[i] for i, name in enumerate(h[1:])
                                  if name})
            for h, start, end in zip(headers, bounds, bounds[1:], strict=False)]


def _positional(kind: Kind, columns: list[str]) -> dict[str, str]:
    """Without a header: the layout with as many fields as the first line, if only one."""
    fitting = [lay for lay in kind.layouts if len(lay.fields) == len(columns)]
    if len(fitting) != 1:
        return {}
    return {normalise(f.sinch_name): columns[i] for i, f in enumerate(fitting[0].fields)}

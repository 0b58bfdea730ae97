"""The customer's own records of what it asked for, matched with the CDRs Sinch billed.

An own-records file (`expected_<kind>_<day>.csv`: `id;timestamp[;amount;currency]` with a
header) is read, stored in `cdr_expected`, and each record is matched with its CDR wherever
(whichever day) it landed: matched, matched late, amount mismatch, time skew, missing in CDRs;
and each CDR of the day nobody asked for is unexpected.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from cdr_workflow.kinds import Kind
from cdr_workflow.layouts import Field, FieldType
from cdr_workflow.reader import DELIMITER, CdrFileError, decompressed
from cdr_workflow.sources import CdrFile, Source
from cdr_workflow.values import convert
from cdr_workflow.warehouse import Warehouse, as_date
from cdr_workflow.warehouse.tables import EXPECTED, EXPECTED_MATCH

LATE_DAYS = 3  # a CDR may land in a file up to this many days after its own day
STATUSES = ("matched", "matched_late", "amount_mismatch", "time_skew", "missing_in_cdrs",
            "unexpected_in_cdrs")
EXPECTED_FIELDS = (Field("id", FieldType.STRING, ""), Field("timestamp", FieldType.TIMESTAMP, ""),
                   Field("amount", FieldType.DECIMAL, ""), Field("currency", FieldType.STRING, ""))


@dataclass(frozen=True)
class Tolerances:
    amount: Decimal = Decimal(0)
    seconds: float = 300.0


@dataclass(frozen=True)
class Match:
    id: str
    status: str
    detail: str
    cdr_date: dt.date | None  # where the CDR was loaded, if anywhere


def read_expected_file(stream: BinaryIO, source: str) -> pa.Table:
    """Own records as Arrow columns id, expected_time, amount, currency. Small (a line per
    request), so read whole; a bad value fails the file, naming it and the line."""
    raw = decompressed(stream, source).read()
    names = [f.sinch_name for f in EXPECTED_FIELDS]
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw.removeprefix(codecs.BOM_UTF8)),
            parse_options=pacsv.ParseOptions(delimiter=DELIMITER),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[""], strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        raise CdrFileError(source, f"not an expected-records file: {exc}") from exc
    if not {"id", "timestamp"} <= set(table.column_names):
        raise CdrFileError(source, "expected a header with at least id;timestamp")
    reasons: dict[int, list[str]] = {}
    columns = [convert(table.column(f.sinch_name).combine_chunks(), f, reasons)
               if f.sinch_name in table.column_names else pa.nulls(table.num_rows, f.type.arrow)
               for f in EXPECTED_FIELDS]
    if reasons:
        row, why = min(reasons.items())
        raise CdrFileError(source, "; ".join(why), row + 2)
    return pa.table(dict(zip(("id", "expected_time", "amount", "currency"), columns,
                             strict=True)))


def expected_query(kind: Kind) -> str:
    """The customer's records for a day, each with its CDR wherever (whichever day) it landed."""
    amount = "c.amount" if kind.has_amounts else "NULL"
    return (f"SELECT e.id, e.expected_time, e.amount, c.cdr_date, c.{kind.event_time_column}, "
            f"{amount} FROM cdr_expected e LEFT JOIN {kind.table} c ON c.{kind.id_column} = e.id "
            "WHERE e.kind = ? AND e.cdr_date = ?")


def unexpected_query(kind: Kind) -> str:
    key = kind.id_column
    return (f"SELECT c.{key}, c.source_file, c.source_line FROM {kind.table} c "
            "WHERE c.cdr_date = ? AND NOT EXISTS "
            f"(SELECT 1 FROM cdr_expected e WHERE e.kind = ? AND e.id = c.{key})")


def match_records(day: dt.date, expected_rows: Iterable[tuple], unexpected_rows: Iterable[tuple],
                  tolerances: Tolerances) -> list[Match]:
    out = [_match_one(day, *row, tolerances) for row in expected_rows]
    out += [Match(record_id, "unexpected_in_cdrs",
                  f"billed in {source_file} line {line}, never asked for", day)
            for record_id, source_file, line in unexpected_rows]
    return out


def _match_one(day: dt.date, record_id: str, expected_time: Any, expected_amount: Any,
               cdr_date: Any, cdr_time: Any, cdr_amount: Any, tolerances: Tolerances) -> Match:
    if cdr_date is None:
        return Match(record_id, "missing_in_cdrs", "asked for, no CDR in any loaded day", None)
    loaded = as_date(cdr_date)
    if expected_amount is not None and cdr_amount is not None:
        cdr_value, expected_value = Decimal(str(cdr_amount)), Decimal(str(expected_amount))
        difference = abs(cdr_value - expected_value)
        if difference > tolerances.amount:
            return Match(record_id, "amount_mismatch", f"CDR {cdr_value} vs expected "
                         f"{expected_value} (off by {difference})", loaded)
    if expected_time is not None and cdr_time is not None:
        skew = abs((_utc(cdr_time) - _utc(expected_time)).total_seconds())
        if skew > tolerances.seconds:
            return Match(record_id, "time_skew", f"CDR time {skew:.0f} s from expected", loaded)
    if loaded > day:
        return Match(record_id, "matched_late", f"arrived in the file of {loaded}", loaded)
    return Match(record_id, "matched", "", loaded)


def _utc(value: Any) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def match_day(warehouse: Warehouse, source: Source, files: list[CdrFile], kind: Kind,
              day: dt.date, tolerances: Tolerances) -> list[Match]:
    """Store the day's own records from `files`, match them, replace the day's matches."""
    where = {"kind": kind.name, "cdr_date": day}
    tables = []
    for f in files:
        with source.open(f) as stream:
            records = read_expected_file(stream, f.relative_path)
        tables.append(EXPECTED.rows(records.to_pylist(), {**where, "source_file": f.relative_path}))
    warehouse.replace_rows(EXPECTED, where, pa.concat_tables(tables))
    matches = match_records(day, warehouse.query(expected_query(kind), (kind.name, day)),
                            warehouse.query(unexpected_query(kind), (day, kind.name)),
                            tolerances)
    warehouse.replace_rows(EXPECTED_MATCH, where, EXPECTED_MATCH.rows(
        [{"id": m.id, "status": m.status, "detail": m.detail, "cdr_loaded_date": m.cdr_date}
         for m in matches], {**where, "computed_at": dt.datetime.now(dt.UTC)}))
    return matches


def day_loaded(warehouse: Warehouse, kind: Kind, day: dt.date) -> bool:
    """Whether the day's CDR files are in the ledger (matching before that finds nothing)."""
    return bool(warehouse.query("SELECT 1 FROM cdr_files WHERE kind = ? AND cdr_date = ? "
                                "LIMIT 1", (kind.name, day)))


def days_to_rematch(loaded_day: dt.date) -> list[dt.date]:
    """Loading a day can resolve its own records and the late ones of the days before it."""
    return [loaded_day - dt.timedelta(days=back) for back in range(LATE_DAYS, -1, -1)]

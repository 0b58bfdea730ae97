"""Sinch CDR file bytes → typed, Arrow-backed chunks plus rejects with line numbers.

Pure Python, no Dagster. The file is streamed in blocks of whole records, so memory depends on
the block size, not the file size. Each block takes a fast path (numpy finds the record
boundaries, pyarrow parses, vectorised checks type it, pandera validates it) and falls back to
Python's csv module, record by record, only when pyarrow cannot parse the block as a whole
(wrong field counts, stray quotes, bytes that are not UTF-8).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cdr_workflow.layouts import (
    AMOUNT_SCALE,
    TIMESTAMP_TYPE,
    Field,
    FieldType,
    Layout,
    layouts_of,
)
from cdr_workflow.schemas import schema_for

DELIMITER = ";"
DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024  # measured: faster and leaner than 4 or 16 MiB
PARSE_BLOCK_BYTES = 1024 * 1024  # pyarrow's unit of parallel parsing
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a record longer than this means an unterminated quote
_NEWLINE, _QUOTE = 0x0A, 0x22

_INTEGER = r"^[+-]?\d{1,18}$"
_DECIMAL = rf"^[+-]?\d{{1,12}}(\.\d{{1,{AMOUNT_SCALE}}})?$"
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)?$"
_HAS_ZONE = r"(Z|[+-]\d{2}(:?\d{2})?)$"


class CdrFileError(Exception):
    """The file as a whole cannot be read; nothing from it is loaded."""

    def __init__(self, source: str, problem: str, line: int | None = None):
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {problem}")
        self.source, self.problem, self.line = source, problem, line


@dataclass(frozen=True)
class Reject:
    line: int
    raw_line: str | None  # None when withheld (pseudonymisation)
    reasons: tuple[str, ...]


@dataclass
class Chunk:
    """Valid rows of one block (typed Arrow table) and the block's rejected lines."""

    rows: pa.Table
    rejects: list[Reject] = field(default_factory=list)

    @property
    def lines_read(self) -> int:
        return self.rows.num_rows + len(self.rejects)


@dataclass(frozen=True)
class ColumnMap:
    """Where each layout column sits in the file, and which file columns are extra."""

    layout: Layout
    positions: dict[str, int]  # layout column → position in the record
    extras: dict[str, int]  # unknown header name → position
    width: int  # fields per record


def read_cdr_file(
    stream: BinaryIO,
    source: str,
    kind: str,
    *,
    header: bool | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> Iterator[Chunk]:
    """Yield chunks of the file. `header=None` detects a header row by its field names."""
    raw = _decompressed(stream, source)
    column_map: ColumnMap | None = None
    newlines_before = 0  # newlines before the current block: gives absolute line numbers
    carry = b""
    first = True
    while True:
        try:
            data = raw.read(block_bytes)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise CdrFileError(source, f"cannot decompress: {exc}") from exc
        final = not data
        buf = carry + data
        if first and buf.startswith(codecs.BOM_UTF8):
            buf = buf[len(codecs.BOM_UTF8):]
        first = False
        records = _records(buf, final, newlines_before)
        if not final and records.consumed == 0:
            if len(buf) > MAX_RECORD_BYTES:
                raise CdrFileError(source, "unterminated quoted field", newlines_before + 1)
            carry = buf
            continue
        newlines_before += records.newlines
        carry = buf[records.consumed:]
        if len(records.starts) and column_map is None:
            column_map, skip = _resolve_columns(
                buf[records.starts[0]:records.ends[0]], source, kind, header, records.lines[0])
            records = records._replace(starts=records.starts[skip:], ends=records.ends[skip:],
                                       lines=records.lines[skip:])
        if len(records.starts):
            yield _read_block(buf, records, column_map)
        if final:
            return


def _decompressed(stream: BinaryIO, source: str) -> BinaryIO:
    """gzip is recognised by its magic bytes, whatever the file is called."""
    buffered = io.BufferedReader(stream) if not hasattr(stream, "peek") else stream
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered)  # type: ignore[return-value]
    return buffered


class Records(NamedTuple):
    starts: np.ndarray  # offset of each non-empty record in the buffer
    ends: np.ndarray  # offset of its end (its newline, or the end of the buffer)
    lines: np.ndarray  # line number where it starts
    consumed: int  # bytes of the buffer that hold whole records
    newlines: int  # newlines within those bytes
    quoted_newlines: bool  # some record holds a line break inside quotes


def _records(buf: bytes, final: bool, newlines_before: int) -> Records:
    """Find the whole records in `buf`.

    A newline ends a record only outside quotes: there an even number of `"` precedes it
    (escaped quotes `""` keep the parity), which numpy finds without a Python loop.
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(arr == _NEWLINE)
    if b'"' in buf:
        quotes = np.flatnonzero(arr == _QUOTE)
        boundaries = newlines[(np.searchsorted(quotes, newlines) & 1) == 0]
    else:
        boundaries = newlines
    consumed = int(boundaries[-1]) + 1 if len(boundaries) else 0
    ends = boundaries
    if final and consumed < len(buf):
        ends = np.append(boundaries, len(buf))
        consumed = len(buf)
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else ends
    lengths = ends - starts
    trailing_cr = np.zeros(len(ends), dtype=bool)
    nonzero = lengths > 0
    trailing_cr[nonzero] = arr[ends[nonzero] - 1] == 0x0D
    keep = lengths - trailing_cr > 0
    starts, ends = starts[keep], ends[keep]
    lines = newlines_before + np.searchsorted(newlines, starts) + 1
    return Records(starts, ends, lines, consumed, int(np.searchsorted(newlines, consumed)),
                   len(boundaries) != len(newlines))


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _split(record: bytes) -> list[str]:
    text = record.decode("utf-8", errors="replace").rstrip("\r")
    try:
        return next(csv.reader([text], delimiter=DELIMITER), [])
    except csv.Error:  # a mangled first line: its fields still tell header from data
        return text.split(DELIMITER)


def _resolve_columns(
    first_record: bytes, source: str, kind: str, header: bool | None, line: int
) -> tuple[ColumnMap, int]:
    """Work out the layout and column positions from the first record. Returns (map, skip)."""
    fields = _split(first_record)
    names = [_normalise(f) for f in fields]
    known = {_normalise(f.sinch_name) for lay in layouts_of(kind) for f in lay.fields}
    known |= {_normalise(f.column) for lay in layouts_of(kind) for f in lay.fields}
    looks_like_header = sum(n in known for n in names) >= max(2, len(names) // 2)
    if header is None:
        header = looks_like_header
    if header:
        return _map_header(fields, names, source, kind, line), 1
    return _map_positional(len(fields), source, kind, line), 0


def _map_header(
    fields: list[str], names: list[str], source: str, kind: str, line: int
) -> ColumnMap:
    def score(layout: Layout) -> tuple[int, int]:
        wanted = _layout_names(layout)
        return (sum(n in wanted for n in names), -sum(w not in names for w in wanted))

    layout = max(layouts_of(kind), key=score)
    wanted = _layout_names(layout)
    positions = {wanted[n]: i for i, n in enumerate(names) if n in wanted}
    missing = [f.sinch_name for f in layout.fields if f.required and f.column not in positions]
    if missing:
        raise CdrFileError(
            source, f"header lacks required column(s) {', '.join(missing)} "
            f"for the {layout.name} layout", line)
    extras = {fields[i].strip(): i for i, n in enumerate(names) if n not in wanted}
    return ColumnMap(layout, positions, extras, len(fields))


def _layout_names(layout: Layout) -> dict[str, str]:
    """Accepted header spellings (Sinch name or snake_case, any case) → column."""
    names = {_normalise(f.sinch_name): f.column for f in layout.fields}
    names.update({_normalise(f.column): f.column for f in layout.fields})
    return names


def _map_positional(width: int, source: str, kind: str, line: int) -> ColumnMap:
    candidates = [lay for lay in layouts_of(kind) if len(lay.fields) == width]
    if len(candidates) > 1:  # app-app and SIP-terminated both have 10 fields
        named = [lay for lay in candidates if lay.name.replace("_", "") in _normalise(source)]
        candidates = named or candidates
    if len(candidates) != 1:
        widths = sorted({len(lay.fields) for lay in layouts_of(kind)})
        problem = (
            f"no header and {width} fields: cannot tell which {kind} layout this is "
            f"(expected {' or '.join(map(str, widths))} fields; name 10-field voice files "
            "with app_app or sip_terminated, or give them a header)"
        )
        raise CdrFileError(source, problem, line)
    layout = candidates[0]
    return ColumnMap(layout, {f.column: i for i, f in enumerate(layout.fields)}, {}, width)


def raw_text(record: bytes, encoding: str = "utf-8") -> str:
    """A rejected line as text that any warehouse can store: a NUL byte is written `\\x00`,
    bytes that are not UTF-8 are read as Latin-1 so none is dropped."""
    return record.decode(encoding, errors="replace").rstrip("\r").replace("\x00", "\\x00")


def _read_block(buf: bytes, records: Records, column_map: ColumnMap) -> Chunk:
    starts, ends, lines = records.starts, records.ends, records.lines
    strings = _parse_fast(buf[int(starts[0]):int(ends[-1])], len(starts), column_map.width,
                          records.quoted_newlines, int((ends - starts).max()))
    rejects: list[Reject] = []
    if strings is None:
        strings, kept, rejects = _parse_slow(buf, starts, ends, lines, column_map.width)
        starts, ends, lines = starts[kept], ends[kept], lines[kept]
    typed, reasons = _typed(strings, column_map)
    _validate(typed, column_map.layout, reasons)
    bad = np.zeros(len(lines), dtype=bool)
    for row, row_reasons in reasons.items():
        bad[row] = True
        raw = raw_text(buf[int(starts[row]):int(ends[row])])
        rejects.append(Reject(int(lines[row]), raw, tuple(row_reasons)))
    rows = typed.append_column("source_line", pa.array(lines, pa.int64()))
    rows = rows.filter(pa.array(~bad)) if bad.any() else rows
    rejects.sort(key=lambda r: r.line)
    return Chunk(rows, rejects)


def _parse_fast(data: bytes, expected_rows: int, width: int, quoted_newlines: bool,
                longest_record: int) -> pa.Table | None:
    """All fields as strings, empty ones null (`N/A` stays a value).

    Without line breaks inside quotes pyarrow may split the block and parse it on all cores.
    """
    names = [f"f{i}" for i in range(width)]
    block_size = len(data) + 1 if quoted_newlines else max(PARSE_BLOCK_BYTES, longest_record + 2)
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, block_size=block_size),
            parse_options=pacsv.ParseOptions(delimiter=DELIMITER,
                                             newlines_in_values=quoted_newlines),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,  # "" is empty too, as in the slow path
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    return table if table.num_rows == expected_rows else None


def _parse_slow(
    buf: bytes, starts: np.ndarray, ends: np.ndarray, lines: np.ndarray, width: int
) -> tuple[pa.Table, np.ndarray, list[Reject]]:
    columns: list[list[str | None]] = [[] for _ in range(width)]
    kept = np.zeros(len(starts), dtype=bool)
    rejects = []
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        record = buf[int(start):int(end)]
        try:
            text = record.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            reason = f"not valid UTF-8 (byte 0x{record[exc.start]:02x} at column {exc.start + 1})"
            rejects.append(Reject(int(lines[i]), raw_text(record, "latin-1"), (reason,)))
            continue
        try:
            fields = next(csv.reader([text], delimiter=DELIMITER, strict=True))
        except csv.Error as exc:
            rejects.append(Reject(int(lines[i]), raw_text(record),
                                  (f"malformed quoting: {exc}",)))
            continue
        if len(fields) != width:
            reason = f"expected {width} fields, found {len(fields)}"
            rejects.append(Reject(int(lines[i]), raw_text(record), (reason,)))
            continue
        kept[i] = True
        for column, value in zip(columns, fields, strict=True):
            column.append(value or None)
    table = pa.table({f"f{i}": pa.array(c, pa.string()) for i, c in enumerate(columns)})
    return table, kept, rejects


Reasons = dict[int, list[str]]


def _typed(strings: pa.Table, column_map: ColumnMap) -> tuple[pa.Table, Reasons]:
    """Convert each layout column to its Arrow type; unconvertible values become reasons."""
    reasons: Reasons = {}
    arrays, names = [], []
    for f in column_map.layout.fields:
        position = column_map.positions.get(f.column)
        if position is None:
            arrays.append(pa.nulls(strings.num_rows, f.type.arrow))
        else:
            text = strings.column(position).combine_chunks()
            arrays.append(_convert(text, f, reasons))
        names.append(f.column)
    if column_map.layout.kind == "voice":
        arrays.append(pa.repeat(pa.scalar(column_map.layout.name), strings.num_rows))
        names.append("call_type")
    arrays.append(_extra_fields(strings, column_map.extras))
    names.append("extra_fields")
    return pa.table(arrays, names=names), reasons


def _convert(text: pa.Array, f: Field, reasons: Reasons) -> pa.Array:
    """Empty fields are already null; a value that does not parse becomes a reason."""
    if f.type is FieldType.STRING:
        _note(pc.match_substring(text, "\x00"), f"{f.sinch_name} contains a NUL byte", reasons)
        return text
    if f.type is FieldType.DECIMAL and pc.any(pc.match_substring(text, ",")).as_py():
        text = pc.replace_substring(text, ",", ".")  # a decimal comma is tolerated
    pattern = {FieldType.INTEGER: _INTEGER, FieldType.DECIMAL: _DECIMAL,
               FieldType.TIMESTAMP: _TIMESTAMP}[f.type]
    invalid = pc.invert(pc.match_substring_regex(text, pattern))
    usable = text
    if pc.any(invalid).as_py():
        rows = np.flatnonzero(invalid.fill_null(False).to_numpy(zero_copy_only=False))
        for row in rows:
            reasons.setdefault(int(row), []).append(
                f"{f.sinch_name} is not {_expected(f.type)}: {text[row].as_py()!r}")
        usable = pc.if_else(invalid, pa.scalar(None, pa.string()), text)
    if f.type is FieldType.TIMESTAMP:
        return _to_timestamp(usable, f, reasons)
    return pc.cast(usable, f.type.arrow)


def _expected(field_type: FieldType) -> str:
    return {
        FieldType.INTEGER: "an integer",
        FieldType.DECIMAL: f"a decimal with at most {AMOUNT_SCALE} decimal places",
        FieldType.TIMESTAMP: "an ISO 8601 or 'yyyy-MM-dd HH:mm:ss' timestamp",
    }[field_type]


def _to_timestamp(text: pa.Array, f: Field, reasons: Reasons) -> pa.Array:
    """Values without a zone are UTC. Stored at microsecond precision."""
    has_zone = pc.match_substring_regex(text, _HAS_ZONE)
    zoned = text if pc.all(has_zone).as_py() is not False else pc.if_else(
        has_zone, text, pc.binary_join_element_wise(text, "Z", ""))
    nanos = pa.timestamp("ns", tz="UTC")
    try:
        parsed = pc.cast(zoned, nanos)
    except pa.ArrowInvalid:  # well-formed but impossible (month 13): find the rows one by one
        values = []
        for row, value in enumerate(zoned.to_pylist()):
            try:
                values.append(pc.cast(pa.array([value]), nanos)[0])
            except pa.ArrowInvalid:
                reasons.setdefault(row, []).append(
                    f"{f.sinch_name} is not a valid date and time: {text[row].as_py()!r}")
                values.append(pa.scalar(None, nanos))
        parsed = pa.array([v.as_py() for v in values], nanos)
    return pc.cast(parsed, TIMESTAMP_TYPE, safe=False)


def _note(mask: pa.Array, reason: str, reasons: Reasons) -> None:
    if pc.any(mask).as_py():
        for row in np.flatnonzero(mask.to_numpy(zero_copy_only=False)):
            reasons.setdefault(int(row), []).append(reason)


def _extra_fields(strings: pa.Table, extras: dict[str, int]) -> pa.Array:
    """Columns the layout does not know are kept, as one JSON object per row."""
    if not extras:
        return pa.nulls(strings.num_rows, pa.string())
    values = {name: strings.column(pos).to_pylist() for name, pos in extras.items()}
    return pa.array(
        [json.dumps({n: v[i] for n, v in values.items()}) for i in range(strings.num_rows)],
        pa.string(),
    )


_CHECK_WORDING = {"not_nullable": "is missing", "field_uniqueness": "duplicates an earlier line"}


def _validate(typed: pa.Table, layout: Layout, reasons: Reasons) -> None:
    """Run the layout's pandera schema on rows that typed cleanly; failures become reasons."""
    frame = typed.to_pandas(types_mapper=pd.ArrowDtype)
    candidates = frame.drop(index=list(reasons)) if reasons else frame
    try:
        schema_for(layout.name).validate(candidates, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases.dropna(subset=["index"])
        for row, column, check, schema_context in cases[
            ["index", "column", "check", "schema_context"]
        ].itertuples(index=False):
            wording = _CHECK_WORDING.get(check, check)
            reason = wording if schema_context == "DataFrameSchema" else \
                f"{layout.field(column).sinch_name} {wording}"
            row_reasons = reasons.setdefault(int(row), [])
            if reason not in row_reasons:
                row_reasons.append(reason)


EXPECTED_SCHEMA = pa.schema([("id", pa.string()), ("expected_time", TIMESTAMP_TYPE),
                             ("amount", pa.decimal128(18, AMOUNT_SCALE)),
                             ("currency", pa.string())])


def read_expected_file(stream: BinaryIO, source: str) -> pa.Table:
    """The customer's own log of what it asked for: `id;timestamp[;amount;currency]` with a
    header. Small (one line per request), so read whole; a bad value fails the file by name."""
    raw = _decompressed(stream, source).read()
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw.removeprefix(codecs.BOM_UTF8)),
            parse_options=pacsv.ParseOptions(delimiter=DELIMITER),
            convert_options=pacsv.ConvertOptions(
                column_types={"id": pa.string(), "timestamp": pa.string(),
                              "amount": pa.string(), "currency": pa.string()},
                null_values=[""], strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        raise CdrFileError(source, f"not an expected-records file: {exc}") from exc
    if not {"id", "timestamp"} <= set(table.column_names):
        raise CdrFileError(source, "expected a header with at least id;timestamp")
    reasons: Reasons = {}
    timestamps = _to_timestamp(table.column("timestamp").combine_chunks(),
                               Field("timestamp", FieldType.TIMESTAMP, ""), reasons)
    amounts = pa.nulls(table.num_rows, EXPECTED_SCHEMA.field("amount").type)
    if "amount" in table.column_names:
        amounts = _convert(table.column("amount").combine_chunks(),
                           Field("amount", FieldType.DECIMAL, ""), reasons)
    if reasons:
        row, why = next(iter(sorted(reasons.items())))
        raise CdrFileError(source, "; ".join(why), row + 2)
    currency = (table.column("currency") if "currency" in table.column_names
                else pa.nulls(table.num_rows, pa.string()))
    return pa.Table.from_arrays([table.column("id"), timestamps, amounts, currency],
                                schema=EXPECTED_SCHEMA)

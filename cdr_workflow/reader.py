"""Sinch CDR file bytes → typed, Arrow-backed chunks plus rejects with line numbers.

Pure Python, no Dagster. The file is streamed in blocks of whole records, so memory depends on
the block size, not the file size. Each block takes a fast path (numpy finds the record
boundaries, pyarrow parses, vectorised checks type it, pandera validates it); where pyarrow
cannot parse it as a whole, its records with a wrong field count are rejected first (counted
with numpy), and the rest in halves (stray quotes, bytes that are not UTF-8), down to a few
records read one by one by Python's csv module, whose reading is the reference.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import os
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from cdr_workflow.errors import CdrFileError
from cdr_workflow.header import (
    DELIMITER,
    ColumnMap,
    SchemaDrift,
    header_openings,
    is_header,
    resolve_columns,
)
from cdr_workflow.kinds import Kind, kind_of
from cdr_workflow.records import (
    CARRIAGE_RETURN,
    DELIMITER_BYTE,
    NEWLINE,
    QUOTE,
    Records,
    find_records,
    slice_records,
    well_formed,
)
from cdr_workflow.seen_ids import SeenIds, id_hashes
from cdr_workflow.values import duplicate_in_file, suspects, typed_columns, validate

DEFAULT_BLOCK_BYTES = 8 * 1024 * 1024  # measured: faster and leaner than 4 or 16 MiB
PARSE_BLOCK_BYTES = 1024 * 1024  # pyarrow's unit of parallel parsing
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a record longer than this means an unterminated quote
FEW_CUTS = 64  # rows left out of a table beyond which one filtering copy beats many slices
FEW_RECORDS = 64  # records read one by one where pyarrow cannot parse them together
FEW_RUNS = 64  # records set apart beyond which the others are moved together and parsed once
# (an 8 MiB block's 48k records: 17 ms) rather than run by run (a pyarrow call: 0.2 ms)
HELD_ROWS = 50_000  # suspect rows held for one run of the schema (a bad file has many)
READ_THREADS = min(4, os.cpu_count() or 1)  # blocks typed at once, up to 4 cores (pyarrow
# frees the GIL); each block in flight holds its bytes and typed rows

__all__ = ["DELIMITER", "CdrFileError", "Chunk", "Reject", "decompressed", "read_cdr_file"]


def _arrow_memory_from_jemalloc() -> None:
    """Arrow's buffers from jemalloc where pyarrow has it and no one chose otherwise
    (`ARROW_DEFAULT_MEMORY_POOL`). With Linux's default, mimalloc, a 1M-row day's load spent
    1.6-2x the time in the kernel (0.84-1.13 s against 0.45-0.71 s, mostly zeroing fresh
    pages) and peaked 35-50 MB higher."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ and \
            "jemalloc" in pa.supported_memory_backends():
        pa.set_memory_pool(pa.jemalloc_memory_pool())


_arrow_memory_from_jemalloc()


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


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
    drift: SchemaDrift = SchemaDrift()  # how the file's header differs from its layout

    @property
    def lines_read(self) -> int:
        return self.rows.num_rows + len(self.rejects)


def read_cdr_file(
    stream: BinaryIO,
    source: str,
    kind: Kind | str,
    *,
    header: bool | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    copy_to: Writable | None = None,
    unique_ids: bool = True,
) -> Iterator[Chunk]:
    """Yield chunks of the file. `header=None` detects a header row by its field names;
    `copy_to` receives the file's text as read (decompressed, UTF-8); `unique_ids=False`
    leaves duplicate ids to the caller (a day's load finds them across files and days), else
    a later copy of an id is a reject, in its block or after it (`_EarlierBlocks`)."""
    kind = kind_of(kind) if isinstance(kind, str) else kind
    raw = decompressed(stream, source)
    column_map: ColumnMap | None = None
    openings = header_openings(kind)
    newlines_before = 0  # newlines before the current block: gives absolute line numbers
    carry = b""
    first = True
    earlier = _EarlierBlocks(kind.id_column) if unique_ids else None
    with _Blocks(unique_ids) as blocks:
        while True:
            try:
                data = raw.read(block_bytes)
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                raise CdrFileError(source, f"cannot decompress: {exc}") from exc
            final = not data
            if copy_to is not None:
                copy_to.write(data)
            buf = carry + data
            if first and buf.startswith(codecs.BOM_UTF8):
                buf = buf[len(codecs.BOM_UTF8):]
            first = False
            width = column_map.width if column_map else None
            records = find_records(buf, final, newlines_before, width)
            if column_map is None and len(records.starts) and b'"' in buf:
                first_map, _ = resolve_columns(buf[records.starts[0]:records.ends[0]], source, kind,
                                               header, records.lines[0])
                records = find_records(buf, final, newlines_before, first_map.width)
            if not final and records.consumed == 0:
                if len(buf) > MAX_RECORD_BYTES:
                    raise CdrFileError(source, "unterminated quoted field", newlines_before + 1)
                carry = buf
                continue
            newlines_before += records.newlines
            carry = buf[records.consumed:]
            if len(records.starts) and column_map is None:
                column_map, skip = resolve_columns(
                    buf[records.starts[0]:records.ends[0]], source, kind, header, records.lines[0])
                records = records._replace(starts=records.starts[skip:], ends=records.ends[skip:],
                                           lines=records.lines[skip:])
            for segment, new_map in _split_at_headers(buf, records, kind, source, openings):
                column_map = new_map or column_map
                if len(segment.starts):
                    blocks.submit(buf, segment, column_map)
            for chunk in blocks.ready(final):
                yield earlier.judged(chunk) if earlier else chunk
            if final:
                return


class _Blocks:
    """Blocks typed side by side (READ_THREADS), their chunks handed on in file order.
    Suspect rows are held for the schema and judged together (it runs once, not per block),
    bounded in number and never across a change of layout; when ids must be unique, each
    block's are judged with it, so that every block's rows come before the next block's."""

    def __init__(self, unique_ids: bool):
        self.unique_ids = unique_ids
        self.pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="cdr-block")
        self.pending: deque[Future[tuple[Chunk, _Suspects]]] = deque()
        self.held: _Suspects | None = None

    def submit(self, buf: bytes, records: Records, column_map: ColumnMap) -> None:
        self.pending.append(self.pool.submit(_read_block, buf, records, column_map,
                                             self.unique_ids))

    def ready(self, final: bool) -> Iterator[Chunk]:
        """The chunks of the blocks done, in order; all of them (and the held rows) when
        the file has ended."""
        while self.pending and (final or len(self.pending) > READ_THREADS):
            chunk, suspect = self.pending.popleft().result()
            yield chunk
            if self.unique_ids:  # a block's rows all handed on before the next block's
                yield suspect.judged(True)
                continue
            held = self.held
            if held is not None and (held.column_map != suspect.column_map
                                     or held.rows.num_rows >= HELD_ROWS):
                yield held.judged(self.unique_ids)
                held = None
            self.held = suspect if held is None else held.merged(suspect)
        if final and self.held is not None:
            yield self.held.judged(self.unique_ids)
            self.held = None

    def __enter__(self) -> _Blocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(cancel_futures=True)


GZIP_MAGIC = b"\x1f\x8b"
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def read_as_stored(head: bytes) -> bool:
    """Whether `decompressed` reads a file that starts with these bytes as it is stored."""
    return head[:2] != GZIP_MAGIC and head[:2] not in UTF16_BOMS


def decompressed(stream: BinaryIO, source: str) -> BinaryIO:
    """The file's bytes as UTF-8 (or whatever 8-bit text it holds): gzip is recognised by its
    magic bytes whatever the file is called, UTF-16 (an Excel or PowerShell export) by its
    byte order mark."""
    buffered = io.BufferedReader(stream) if not hasattr(stream, "peek") else stream
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        buffered = io.BufferedReader(gzip.GzipFile(fileobj=buffered))  # type: ignore[arg-type]
    try:
        head = buffered.peek(2)[:2]
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise CdrFileError(source, f"cannot decompress: {exc}") from exc
    if head in UTF16_BOMS:
        return io.BufferedReader(_Utf16AsUtf8(buffered, source))  # type: ignore[return-value]
    return buffered


class _Utf16AsUtf8(io.RawIOBase):
    """A UTF-16 stream (with its byte order mark) read as UTF-8 bytes."""

    def __init__(self, raw: BinaryIO, source: str):
        self.text = io.TextIOWrapper(raw, encoding="utf-16", newline="")
        self.source, self.pending = source, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                text = self.text.read(len(buffer) // 4 or 1)
            except UnicodeDecodeError as exc:
                raise CdrFileError(self.source, f"not valid UTF-16: {exc}") from exc
            if not text:
                return 0
            self.pending = text.encode("utf-8")
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


def _split_at_headers(buf: bytes, records: Records, kind: Kind, source: str,
                      openings: np.ndarray) -> Iterator[tuple[Records, ColumnMap | None]]:
    """The block's records in runs between header lines met again (two exports concatenated):
    each header re-maps the columns of the records after it, and is not itself a record.
    Only records that begin like a field name (their first two bytes) are looked at."""
    starts, ends = records.starts, records.ends
    arr = np.frombuffer(buf, dtype=np.uint8)
    long_enough = ends - starts >= 2
    opening = starts[long_enough]
    heads = arr[opening].astype(np.uint16) << 8 | arr[opening + 1]
    candidates = np.flatnonzero(long_enough)[np.isin(heads, openings)]
    at = [int(i) for i in candidates
          if is_header(buf[int(starts[i]):int(ends[i])], kind)]
    begin, new_map = 0, None
    for i in at:
        yield slice_records(records, begin, i), new_map
        new_map, _ = resolve_columns(buf[int(starts[i]):int(ends[i])], source, kind,
                                     True, int(records.lines[i]))
        begin = i + 1
    yield slice_records(records, begin, len(starts)), new_map


class _EarlierBlocks:
    """The ids a file's earlier blocks handed on, by their 64-bit hash, with their lines: the
    schema finds an id's later copies within a block, these the copies of an id accepted in
    a block before. A later copy is rejected naming the first one's line, without its text
    (the block's clean rows do not keep it); a hash shared by two ids would reject the later
    as a copy, about once in 10^7 files of 1M ids (the day's load settles copies exactly)."""

    def __init__(self, id_column: str):
        self.id_column = id_column
        self.seen = SeenIds()
        self.blocks: list[tuple[np.ndarray, np.ndarray]] = []  # sorted hashes, their lines

    def judged(self, chunk: Chunk) -> Chunk:
        if not chunk.rows.num_rows:
            return chunk
        hashes = SeenIds.storable(id_hashes(chunk.rows.column(self.id_column)))
        lines = chunk.rows.column("source_line").to_numpy()
        copies = list(self._first_lines(chunk, hashes, self.seen.add(hashes)))
        if copies:
            keep = np.ones(len(lines), dtype=bool)
            keep[[row for row, _, _ in copies]] = False
            rejects = [Reject(int(lines[row]), None, (duplicate_in_file(value, first),))
                       for row, value, first in copies]
            chunk = Chunk(chunk.rows.filter(pa.array(keep)), chunk.rejects + rejects,
                          chunk.drift)
            hashes, lines = hashes[keep], lines[keep]
        if len(hashes):
            order = np.argsort(hashes)
            self.blocks.append((hashes[order], lines[order]))
        return chunk

    def _first_lines(self, chunk: Chunk, hashes: np.ndarray, again: np.ndarray
                     ) -> Iterator[tuple[int, object, int]]:
        """Row, id and first line of each row whose id an earlier block handed on."""
        rows = np.flatnonzero(again)
        first = np.zeros(len(rows), dtype=np.int64)
        for sorted_hashes, lines in self.blocks:  # in file order: the first found is first
            open_rows = first == 0
            at = np.minimum(np.searchsorted(sorted_hashes, hashes[rows]), len(lines) - 1)
            found = open_rows & (sorted_hashes[at] == hashes[rows])
            first[found] = lines[at[found]]
        ids = chunk.rows.column(self.id_column).take(pa.array(rows, pa.int64())).to_pylist()
        return ((int(row), value, int(line))
                for row, value, line in zip(rows, ids, first, strict=True) if line)


def raw_text(record: bytes, encoding: str = "utf-8") -> str:
    """A rejected line as text that any warehouse can store: a NUL byte is written `\\x00`;
    pass `latin-1` for bytes that are not UTF-8, so none is dropped."""
    return record.decode(encoding, errors="replace").rstrip("\r").replace("\x00", "\\x00")


@dataclass
class _Suspects:
    """Typed rows that may break a rule, held for the schema with their lines and text."""

    column_map: ColumnMap
    rows: pa.Table
    raws: list[str]

    def merged(self, other: _Suspects) -> _Suspects:
        return _Suspects(self.column_map, pa.concat_tables([self.rows, other.rows]),
                         self.raws + other.raws)

    def judged(self, unique_ids: bool) -> Chunk:
        """The schema's verdict: the rows that pass it, a reject for each other row."""
        lines = self.rows.column("source_line").to_numpy()
        reasons: dict[int, list[str]] = {}
        validate(self.rows, self.column_map.layout, reasons, lines, unique_ids)
        bad = np.zeros(self.rows.num_rows, dtype=bool)
        bad[list(reasons)] = True
        rejects = [Reject(int(lines[row]), self.raws[row], tuple(row_reasons))
                   for row, row_reasons in sorted(reasons.items())]
        return Chunk(self.rows.filter(pa.array(~bad)), rejects, self.column_map.drift)


def _read_block(buf: bytes, records: Records, column_map: ColumnMap, unique_ids: bool
                ) -> tuple[Chunk, _Suspects]:
    """The block's rows that typed and pass every rule, with the rejects of those that did not
    type; and the rows that may break a rule, for the schema to judge."""
    starts, ends, lines = records.starts, records.ends, records.lines
    strings, kept, rejects = _parse_block(buf, records, column_map.width)
    if not kept.all():
        starts, ends, lines = starts[kept], ends[kept], lines[kept]
    typed, reasons = typed_columns(strings, column_map, may_hold_nul=b"\x00" in buf)
    bad = np.zeros(len(lines), dtype=bool)
    for row, row_reasons in reasons.items():
        bad[row] = True
        raw = raw_text(buf[int(starts[row]):int(ends[row])])
        rejects.append(Reject(int(lines[row]), raw, tuple(row_reasons)))
    suspect = suspects(typed, column_map.layout, unique_ids) & ~bad
    typed = typed.append_column("source_line", pa.array(lines, pa.int64()))
    held = _Suspects(column_map, typed.filter(pa.array(suspect)),
                     [raw_text(buf[int(starts[i]):int(ends[i])]) for i in np.flatnonzero(suspect)])
    rows = without_rows(typed, bad | suspect)
    rejects.sort(key=lambda r: r.line)
    return Chunk(rows, rejects, column_map.drift), held


def without_rows(rows: pa.Table, left_out: np.ndarray) -> pa.Table:
    """The rows but those left out: a few are cut around (zero-copy slices), many filtered
    out (a copy)."""
    cuts = np.flatnonzero(left_out)
    if not len(cuts):
        return rows
    if len(cuts) > FEW_CUTS:
        return rows.filter(pa.array(~left_out))
    kept = [rows.slice(run.start, run.stop - run.start) for run in runs_between(cuts, len(rows))]
    return pa.concat_tables(kept) if kept else rows.slice(0, 0)


def runs_between(cuts: np.ndarray, size: int) -> list[slice]:
    """The non-empty runs of positions below `size` between the (sorted) `cuts`."""
    bounds = [-1, *cuts.tolist(), size]
    return [slice(cut + 1, next_cut) for cut, next_cut in itertools.pairwise(bounds)
            if next_cut > cut + 1]


Parsed = tuple[pa.Table, np.ndarray, list[Reject]]  # strings of the records kept, which, rejects


def _parse_block(buf: bytes, records: Records, width: int) -> Parsed:
    """A block's records as `_parse` reads them, but those with a carriage return not followed
    by a line feed, read one by one: pyarrow would end a line there, the csv module does
    not."""
    starts, ends, lines = records.starts, records.ends, records.lines
    if buf.find(b"\r", int(starts[0]), int(ends[-1])) >= 0:
        data = buf[int(starts[0]):int(ends[-1])]
        bare = _bare_carriage_returns(data, starts - starts[0], ends - starts[0])
        if bare.any():
            return _parse_apart(buf, starts, ends, lines, width, records.quoted_newlines, bare)
    return _parse(buf, starts, ends, lines, width, records.quoted_newlines,
                  records.well_formed, screen=records.well_formed)


def _parse(buf: bytes, starts: np.ndarray, ends: np.ndarray, lines: np.ndarray, width: int,
           quoted_newlines: bool, quotes_well_formed: bool | None = None,
           screen: bool = False) -> Parsed:
    """All fields as strings, the records kept, and a reject for each other. pyarrow parses
    records whose quotes are well formed (it is lenient: with a stray quote only the strict
    parser reads every record alike); where it cannot (a stray quote, a line cut short,
    bytes that are not UTF-8), each half of the records is parsed, down to a few read one by
    one. A bad line costs its block about two parses, not a record-by-record reading (48k
    records: 1 s). `screen`: the records were found by quote parity, so a wrong number of
    fields can be counted first (see `_without_miscounted`)."""
    data = buf[int(starts[0]):int(ends[-1])]
    if quotes_well_formed is None:
        quotes_well_formed = well_formed(data)
    if quotes_well_formed:
        fast = _parse_fast(data, len(starts), width, quoted_newlines, int((ends - starts).max()))
        if fast is not None:
            return fast, np.ones(len(starts), dtype=bool), []
    if len(starts) <= FEW_RECORDS:
        return _parse_slow(buf, starts, ends, lines, width)
    if screen:
        screened = _without_miscounted(buf, data, starts, ends, lines, width, quoted_newlines)
        if screened is not None:
            return screened
    halves = [_parse(buf, starts[part], ends[part], lines[part], width, quoted_newlines)
              for part in (slice(None, len(starts) // 2), slice(len(starts) // 2, None))]
    return (pa.concat_tables([strings for strings, _, _ in halves]),
            np.concatenate([kept for _, kept, _ in halves]),
            [reject for _, _, rejects in halves for reject in rejects])


def _bare_carriage_returns(data: bytes, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Which records (at `first`:`last` in `data`) hold a carriage return not followed by a
    line feed, where the csv module sees a broken line and pyarrow the end of one."""
    arr = np.frombuffer(data, dtype=np.uint8)
    returns = np.flatnonzero(arr[:-1] == CARRIAGE_RETURN)
    bare = returns[arr[returns + 1] != NEWLINE]
    return np.searchsorted(bare, last) - np.searchsorted(bare, first) > 0


def _field_counts(data: bytes, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Each record's number of fields (records at `first`:`last` in `data`, found by quote
    parity), counted with numpy where the csv module reads it so: the delimiters outside
    quotes, in records without a NUL or a byte beyond ASCII (-1 for the others, whose reason
    may be another)."""
    arr = np.frombuffer(data, dtype=np.uint8)

    def per_record(positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(positions, last) - np.searchsorted(positions, first)

    delimiters = np.flatnonzero(arr == DELIMITER_BYTE)
    fields = per_record(delimiters) + 1
    if b'"' in data:  # less the delimiters between each opening and closing quote
        quotes = np.flatnonzero(arr == QUOTE)
        opening, closing = quotes[0::2], quotes[1::2]
        quoted = np.searchsorted(delimiters, closing) - np.searchsorted(delimiters, opening)
        before = np.concatenate(([0], np.cumsum(quoted)))
        fields -= before[np.searchsorted(opening, last)] - before[np.searchsorted(opening, first)]
    if data.isascii() and b"\x00" not in data:
        return fields
    unusual = per_record(np.flatnonzero((arr == 0) | (arr >= 0x80)))
    return np.where(unusual == 0, fields, -1)


def _without_miscounted(buf: bytes, data: bytes, starts: np.ndarray, ends: np.ndarray,
                        lines: np.ndarray, width: int, quoted_newlines: bool) -> Parsed | None:
    """A block that does not parse whole: its lines with another number of fields rejected
    at once, the others parsed; None if there are none. A file whose every line has a field
    too many (a trailing delimiter, say) costs this, not a reading record by record (1M
    lines: 28 s)."""
    counts = _field_counts(data, starts - starts[0], ends - starts[0])
    miscounted = (counts >= 0) & (counts != width)
    if not miscounted.any():
        return None
    strings, kept, rejects = _parse_apart(buf, starts, ends, lines, width, quoted_newlines,
                                          miscounted, read_apart=False)
    rejects += [Reject(int(lines[i]), raw_text(buf[int(starts[i]):int(ends[i])]),
                       (wrong_field_count(width, int(counts[i])),))
                for i in np.flatnonzero(miscounted)]
    return strings, kept, sorted(rejects, key=lambda r: r.line)


def _parse_apart(buf: bytes, starts: np.ndarray, ends: np.ndarray, lines: np.ndarray,
                 width: int, quoted_newlines: bool, apart: np.ndarray, read_apart: bool = True
                 ) -> Parsed:
    """The records but those `apart` parsed (the runs between them where they lie, or, with
    many, moved together), and those apart read one by one (unless `read_apart` is False:
    the caller rejects them); rows in the records' order."""
    cuts, others = np.flatnonzero(apart), np.flatnonzero(~apart)
    parts: list[tuple[np.ndarray, Parsed]] = []
    if len(cuts) <= FEW_RUNS:
        parts += [(np.arange(run.start, run.stop), _parse(buf, starts[run], ends[run],
                                                          lines[run], width, quoted_newlines))
                  for run in runs_between(cuts, len(starts))]
    elif len(others):
        pieces = [buf[int(s):int(e)] for s, e in zip(starts[others], ends[others], strict=True)]
        sizes = np.fromiter(map(len, pieces), np.int64, len(pieces))
        moved_ends = np.cumsum(sizes + 1) - 1
        parts.append((others, _parse(b"\n".join(pieces), moved_ends - sizes, moved_ends,
                                     lines[others], width, quoted_newlines)))
    if read_apart:
        parts.append((cuts, _parse_slow(buf, starts[cuts], ends[cuts], lines[cuts], width)))
    kept = np.zeros(len(starts), dtype=bool)
    rows: list[np.ndarray] = []  # the record of each row, part by part
    for records, (_, part_kept, _) in parts:
        kept[records] = part_kept
        rows.append(records[part_kept])
    strings = pa.concat_tables([strings for _, (strings, _, _) in parts] or [_no_fields(width)])
    order = np.argsort(np.concatenate(rows or [np.zeros(0, np.int64)]), kind="stable")
    if not np.array_equal(order, np.arange(len(order))):
        strings = strings.take(pa.array(order))
    rejects = sorted((r for _, (_, _, part) in parts for r in part), key=lambda r: r.line)
    return strings, kept, rejects


def _no_fields(width: int) -> pa.Table:
    return pa.table({f"f{i}": pa.array([], pa.string()) for i in range(width)})


def wrong_field_count(width: int, found: int) -> str:
    return f"expected {width} fields, found {found}"


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
            reason = wrong_field_count(width, len(fields))
            rejects.append(Reject(int(lines[i]), raw_text(record), (reason,)))
            continue
        kept[i] = True
        for column, value in zip(columns, fields, strict=True):
            column.append(value or None)
    table = pa.table({f"f{i}": pa.array(c, pa.string()) for i, c in enumerate(columns)})
    return table, kept, rejects


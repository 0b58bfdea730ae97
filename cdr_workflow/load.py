"""Load one kind's day: every file the source has for it, read, validated, in one transaction."""

from __future__ import annotations

import bisect
import collections
import contextlib
import datetime as dt
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from queue import Empty, Queue
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from cdr_workflow.errors import CdrFileError
from cdr_workflow.header import SchemaDrift
from cdr_workflow.independent import readable_by_name, text_amounts
from cdr_workflow.kinds import Kind
from cdr_workflow.privacy import pseudonymise
from cdr_workflow.reader import Chunk, raw_text, read_as_stored, read_cdr_file
from cdr_workflow.sources import CdrFile, Listing, NoFileError, Source
from cdr_workflow.spool import Spool
from cdr_workflow.warehouse import Warehouse
from cdr_workflow.warehouse.day_load import (
    REJECT_ROWS,
    AmountKey,
    DayLoad,
    FileLoad,
    day_load,
    reject_rows,
)

T = TypeVar("T")


PREFETCH_CHUNKS = 2  # chunks read ahead while the warehouse writes: bounds memory
REJECTS_AT_ONCE = 100_000  # rejects read back from disk and appended together: bounds memory


def prefetched(chunks: Iterator[T]) -> Iterator[T]:
    """Read the next chunks in a thread while the caller writes this one.

    pyarrow, numpy and the database drivers release the GIL, so reading and writing overlap;
    the bounded queue keeps memory flat. An error in the reader is raised in the caller.
    """
    queue: Queue[tuple[str, Any]] = Queue(maxsize=PREFETCH_CHUNKS)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                queue.put(("chunk", chunk))
            queue.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            queue.put(("error", exc))

    worker = threading.Thread(target=produce, name="cdr-reader", daemon=True)
    worker.start()
    try:
        while True:
            what, item = queue.get()
            if what == "end":
                return
            if what == "error":
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get(timeout=0.1)
        worker.join()


@dataclass(frozen=True)
class DayLoadResult:
    kind: Kind
    day: dt.date
    files: list[FileLoad]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)


class _Chunks:
    """A file's chunks as the rows to append. Their rejects go to disk as they pass, to be
    written once the rows' stream has ended (a file of bad lines has millions: 1M held
    1.8 GB), with their text apart for the money reading; lines read and schema drift are
    kept."""

    def __init__(self, chunks: Iterator[Chunk], pseudonymisation_key: bytes | None,
                 rejects: Spool, rejected_text: Path):
        self.chunks, self.key = chunks, pseudonymisation_key
        self.rejects, self.rejected_text = rejects, rejected_text
        self.lines_read, self.drift = 0, SchemaDrift()

    def rows(self) -> Iterator[pa.Table]:
        with self.rejected_text.open("w", encoding="utf-8", newline="") as text:
            for chunk in self.chunks:
                self.drift = chunk.drift
                self.lines_read += chunk.lines_read
                if chunk.rejects:
                    self.rejects.add(reject_rows(chunk.rejects))
                    text.writelines(f"{r.raw_line}\n" for r in chunk.rejects
                                    if r.raw_line is not None)
                yield pseudonymise(chunk.rows, self.key) if self.key else chunk.rows


@dataclass(frozen=True)
class _FileRead:
    """A file streamed: its rejects, counts and schema drift, and its money as read apart."""

    cdr_file: CdrFile
    chunks: _Chunks
    amounts: Future[dict[AmountKey, Decimal]]

    def record(self, load: DayLoad, kind: Kind, day: dt.date, pseudonymised: bool) -> None:
        """Its rejects (without their text when pseudonymised) and its line in the ledger."""
        name, rejects = self.cdr_file.relative_path, self.chunks.rejects
        if rejects.rows:
            load.add_rejects(name, (_withheld(rows) if pseudonymised else rows
                                    for rows in rejects.tables(REJECTS_AT_ONCE)))
        rejects.close()
        load.add_file(FileLoad(kind.name, day, name, self.cdr_file.uri, self.cdr_file.size_bytes,
                               self.cdr_file.fingerprint, self.chunks.lines_read,
                               schema_drift=self.chunks.drift), self.amounts)


def _withheld(rejects: pa.Table) -> pa.Table:
    """Rejects without their text."""
    return rejects.set_column(rejects.schema.get_field_index("raw_line"), "raw_line",
                              pa.nulls(rejects.num_rows, pa.string()))


def find_day_files(source: Source, kind: Kind, day: dt.date,
                   listing: Listing | None = None) -> list[CdrFile]:
    files = (listing or source.list()).find(kind.name, day)
    if not files:
        raise NoFileError(kind.name, day, source)
    return files


def load_day(
    source: Source, warehouse: Warehouse, kind: Kind, day: dt.date, load_id: str,
    listing: Listing | None = None, pseudonymisation_key: bytes | None = None,
) -> DayLoadResult:
    """Replace the kind's rows for `day` with the content of the day's files, atomically.

    Pass a `listing` taken once per run to avoid listing the source for every day, and a key
    to store phone numbers and user ids as keyed tokens (see `privacy`).
    """
    files = find_day_files(source, kind, day, listing)
    with tempfile.TemporaryDirectory(prefix="cdr-text-") as scratch, \
            contextlib.ExitStack() as spools, \
            ThreadPoolExecutor(1, thread_name_prefix="cdr-amounts") as reference, \
            day_load(warehouse, kind, day, load_id) as load:
        texts: dict[str, TextCopy] = {}  # each file's text: for DuckDB, duplicates' evidence
        if not pseudonymisation_key:
            load.raw_lines = lambda name, lines: texts[name].lines(lines)
        read: list[_FileRead] = []

        def rows_of_files() -> Iterator[tuple[str, pa.Table]]:
            for index, cdr_file in enumerate(files):
                text = texts[cdr_file.relative_path] = TextCopy.of(
                    source, cdr_file, Path(scratch) / f"{index}.csv")
                with source.open(cdr_file) as stream, contextlib.closing(text), \
                        contextlib.closing(prefetched(read_cdr_file(
                            stream, cdr_file.relative_path, kind, copy_to=text,
                            unique_ids=False))) as chunks_read:
                    chunks = _Chunks(chunks_read, pseudonymisation_key,
                                     spools.enter_context(Spool(REJECT_ROWS)),
                                     Path(scratch) / f"{index}-rejected-lines.txt")
                    for rows in chunks.rows():
                        yield cdr_file.relative_path, rows
                # its money is read while the next files stream
                read.append(_FileRead(cdr_file, chunks, reference.submit(text.read, partial(
                    accepted_text_amounts, rejected=chunks.rejected_text, kind=kind,
                    scratch=Path(scratch) / f"{index}-rejected-below-header.csv"))))

        # closed at once if the append fails: the reading stops too
        with contextlib.closing(rows_of_files()) as rows:
            load.add_rows(rows)
        for file_read in read:  # the stream's statement has ended: the connection is free
            file_read.record(load, kind, day, bool(pseudonymisation_key))
    return DayLoadResult(kind, day, load.files)


def accepted_text_amounts(text: Path, rejected: Path, kind: Kind, scratch: Path
                          ) -> dict[AmountKey, Decimal]:
    """What the file's text holds for the lines the reader accepted, by DuckDB's reading:
    all of the text less the rejected lines (`rejected`: their text, a line each), read below
    the file's first line that is not blank (its header; a first record is left out again).
    A rejected line below a header met again mid-file is read by the first header's columns;
    the header and the rejected lines are written to `scratch` for that reading."""
    total = text_amounts(text, kind)
    if not rejected.stat().st_size or not total:
        return total
    with text.open("rb") as f:
        first = next((line for line in f if line.strip()), b"")  # the header, if any
    with scratch.open("wb") as out, rejected.open("rb") as lines:
        out.write(first)
        shutil.copyfileobj(lines, out)
    for key, amount in text_amounts(scratch, kind, skip_first_record=True).items():
        total[key] = total.get(key, Decimal(0)) - amount
    return {key: amount for key, amount in total.items() if amount}


LOOKUP_PIECE_BYTES = 1024 * 1024  # a line is read back from the piece it is in (20 lines of a
# 1M-line file: 0.10-0.17 s from the reader's 8 MiB blocks)


class TextCopy:
    """A file's text as the reader reads it, with the byte offset and line number where each
    piece starts: a line is read back from its piece, not from the start of the file (a
    10M-line file's duplicates cost seconds otherwise). Written to disk as it is read, unless
    the file is on this machine and read as it is stored: then the file itself is read back
    (a 10M-row file's 1.5 GB are not copied), and each reading fails if it was replaced or
    changed since the reader opened it (the day rolls back; the new file loads next)."""

    def __init__(self, path: Path, stored_as: os.stat_result | None = None,
                 name: str | None = None):
        self.path, self.name = path, name or path.name
        self._stored_as = stored_as and _identity(stored_as)  # the file read in place
        self._file = None if stored_as else path.open("wb")
        self.offsets, self.first_lines = [0], [1]

    @classmethod
    def of(cls, source: Source, cdr_file: CdrFile, scratch: Path) -> TextCopy:
        """The file itself when it is local and read as stored, else a copy at `scratch`."""
        local = source.local_path(cdr_file)
        if local is not None:
            stat = local.stat()  # before the reader opens it: a change after is caught
            with local.open("rb") as f:
                if read_as_stored(f.read(2)) and readable_by_name(local):
                    return cls(local, stat, cdr_file.relative_path)
        return cls(scratch)

    def write(self, data: bytes) -> int:
        if self._file is not None:
            self._file.write(data)
        for at in range(0, len(data), LOOKUP_PIECE_BYTES):  # counted anyway: note more starts
            end = min(at + LOOKUP_PIECE_BYTES, len(data))
            self.offsets.append(self.offsets[-1] + end - at)
            self.first_lines.append(self.first_lines[-1] + data.count(b"\n", at, end))
        return len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def read(self, reading: Callable[[Path], T]) -> T:
        """`reading` of the text, from a file read in place only if it is still the one the
        reader read."""
        try:
            result = reading(self.path)
        except Exception as exc:  # a file moved away or cut short: say so, not how it broke
            if self._changed():
                raise self._changed_error() from exc
            raise
        if self._changed():
            raise self._changed_error()
        return result

    def _changed(self) -> bool:
        if not self._stored_as:
            return False
        try:
            return _identity(self.path.stat()) != self._stored_as
        except OSError:
            return True

    def _changed_error(self) -> CdrFileError:
        return CdrFileError(self.name, "the file changed while it was loaded: the day is "
                            "rolled back; load it again")

    def lines(self, wanted: set[int]) -> dict[int, str]:
        return self.read(partial(lines_of, wanted=wanted, block_bytes=LOOKUP_PIECE_BYTES,
                                 starts=(self.offsets, self.first_lines)))


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is replaced or rewritten."""
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def lines_of(text: Path, wanted: set[int], block_bytes: int = 8 * 1024 * 1024,
             starts: tuple[list[int], list[int]] | None = None) -> dict[int, str]:
    """The text of the given (1-based) lines of a file, read block by block (memory stays
    flat whatever the file's size); blocks before the next wanted line are only counted, or
    skipped when `starts` says where lines are (byte offsets and the line at each)."""
    targets = collections.deque(sorted(n for n in wanted if n > 0))  # taken from the front
    found: dict[int, str] = {}
    first_line, carry = 1, b""  # the line that starts `carry`, and its bytes so far
    with text.open("rb") as f:
        while targets:
            if starts:  # jump to the last known start before the line (it may be mid-line)
                at = bisect.bisect_left(starts[1], targets[0]) - 1
                if at >= 0 and starts[0][at] > f.tell():
                    f.seek(starts[0][at])
                    first_line, carry = starts[1][at], b""
            if not (block := f.read(block_bytes)):
                break
            buf = carry + block if carry else block
            newlines = buf.count(b"\n")
            if targets[0] < first_line + newlines:  # a wanted line ends in this block
                ends = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 0x0A)
                while targets and targets[0] < first_line + newlines:
                    n = targets.popleft()
                    start = 0 if n == first_line else int(ends[n - first_line - 1]) + 1
                    found[n] = raw_text(buf[start:int(ends[n - first_line])])
            carry = buf[buf.rfind(b"\n") + 1:]
            first_line += newlines
    if targets and targets[0] == first_line and carry:  # a last line without a newline
        found[first_line] = raw_text(carry)
    return found

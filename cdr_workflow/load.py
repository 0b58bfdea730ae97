"""Load one kind's day: every file the source has for it, read, validated, in one transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cdr_workflow.reader import read_cdr_file
from cdr_workflow.sources import CdrFile, Listing, NoFileError, Source
from cdr_workflow.warehouse import FileLedger, FileResult, Warehouse


@dataclass(frozen=True)
class DayLoadResult:
    kind: str
    day: dt.date
    files: list[FileResult]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)


def find_day_files(source: Source, kind: str, day: dt.date,
                   listing: Listing | None = None) -> list[CdrFile]:
    files = (listing or source.list()).find(kind, day)
    if not files:
        raise NoFileError(kind, day, source)
    return files


def load_day(
    source: Source, warehouse: Warehouse, kind: str, day: dt.date, load_id: str,
    listing: Listing | None = None,
) -> DayLoadResult:
    """Replace the kind's rows for `day` with the content of the day's files, atomically.

    Pass a `listing` taken once per run to avoid listing the source for every day.
    """
    files = find_day_files(source, kind, day, listing)
    with warehouse.day_load(kind, day, load_id) as load:
        for cdr_file in files:
            rows_read = 0
            with source.open(cdr_file) as stream:
                for chunk in read_cdr_file(stream, cdr_file.relative_path, kind):
                    load.add_rows(cdr_file.relative_path, chunk.rows)
                    load.add_rejects(cdr_file.relative_path, chunk.rejects)
                    rows_read += chunk.lines_read
            load.add_file(FileLedger(kind, day, cdr_file.relative_path, cdr_file.uri,
                                     cdr_file.size_bytes, cdr_file.fingerprint, rows_read))
    return DayLoadResult(kind, day, load.results)

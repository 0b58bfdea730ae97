"""Arrow rows kept on disk as they come, so that memory stays flat however many there are."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

import pyarrow as pa


def grouped(batches: Iterable[pa.RecordBatch], schema: pa.Schema, rows: int
            ) -> Iterator[pa.Table]:
    """Batches gathered into tables of at least `rows` rows (the last may have fewer)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.Table.from_batches(pending, schema)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending, schema)


class Spool:
    """Rows written to a temporary file as they come, read back a bounded number at a time."""

    def __init__(self, schema: pa.Schema):
        self.schema, self.rows = schema, 0
        self._file: IO[bytes] | None = None  # opened by the first rows: most spools get none
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None

    def add(self, rows: pa.Table) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="cdr-spool-")  # noqa: SIM115 - close
            self._writer = pa.ipc.new_stream(self._file, self.schema)
        self._writer.write_table(rows)
        self.rows += rows.num_rows

    def tables(self, rows_each: int) -> Iterator[pa.Table]:
        """The rows spooled, in tables of about `rows_each` rows (once)."""
        if self._file is None:
            return
        self._writer.close()
        self._file.seek(0)
        yield from grouped(pa.ipc.open_stream(self._file), self.schema, rows_each)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

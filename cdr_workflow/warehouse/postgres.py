"""The production warehouse: PostgreSQL through psycopg 3, bulk loads with COPY."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from cdr_workflow.warehouse.base import Warehouse

COPY_BATCH_ROWS = 100_000


class PostgresWarehouse(Warehouse):
    placeholder = "%s"

    def __init__(self, url: str):
        self.url = url

    @property
    def display_url(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{parts.username}@{host}" if parts.username else host
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    @contextmanager
    def connect(self) -> Iterator[Any]:
        try:
            con = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.OperationalError as exc:
            # psycopg's message can quote the connection string: name the server, not the secret
            raise ConnectionError(f"cannot connect to the warehouse at {self.display_url}: "
                                  f"{type(exc).__name__}") from None
        try:
            yield con
        finally:
            con.close()

    def _append(self, con: Any, table: str, rows: pa.Table) -> None:
        """COPY in CSV form: pyarrow writes it in C, PostgreSQL parses it in bulk."""
        columns = ", ".join(rows.column_names)
        with con.cursor() as cur, cur.copy(
            f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)"
        ) as copy:
            for batch in rows.to_batches(max_chunksize=COPY_BATCH_ROWS):
                buffer = io.BytesIO()
                pacsv.write_csv(batch, buffer, pacsv.WriteOptions(
                    include_header=False, quoting_style="needed"))
                copy.write(buffer.getbuffer())

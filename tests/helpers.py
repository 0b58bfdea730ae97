"""Small builders for CDR text used across tests."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import dagster as dg

from cdr_workflow.definitions import defs as project_defs
from cdr_workflow.layouts import LAYOUTS
from cdr_workflow.reader import Chunk, read_cdr_file

PT_HEADER = ";".join(f.sinch_name for f in LAYOUTS["phone_terminated"].fields)


def pt_row(call_id: str = "c1", **overrides: str) -> dict[str, str]:
    row = {
        "CallId": call_id, "UserSpaceId": "1001", "CallTime": "2026-11-21T10:00:00Z",
        "Result": "ANSWERED", "Reason": "N/A", "Duration": "30",
        "AnswerTime": "2026-11-21T10:00:05Z", "From": "+46700000001", "To": "+46700000002",
        "Amount": "0.0125", "Currency": "EUR", "Custom": "", "ApplicationKey": "app-1",
        "UserId": "user-1", "ToCountryId": "SE",
    }
    row.update(overrides)
    return row


def line(row: dict[str, str], layout: str = "phone_terminated") -> str:
    return ";".join(row[f.sinch_name] for f in LAYOUTS[layout].fields)


def read_text(text: str | bytes, kind: str = "voice", name: str = "voice_2026-11-21.csv",
              **options) -> list[Chunk]:
    data = text.encode() if isinstance(text, str) else text
    return list(read_cdr_file(io.BytesIO(data), name, kind, **options))


def rows_and_rejects(text: str | bytes, **kwargs) -> tuple[list[dict], list]:
    chunks = read_text(text, **kwargs)
    rows = [r for c in chunks for r in c.rows.to_pylist()]
    return rows, [r for c in chunks for r in c.rejects]


def load_definitions(env: Mapping[str, str]) -> dg.Definitions:
    """The project's Definitions as a process started with `env` (and no other CDR_ setting)
    would load them."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CDR_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        return project_defs()


@contextmanager
def loopback_webhook() -> Iterator[tuple[str, list[dict]]]:
    """A JSON webhook on a free loopback port: (its Apprise URL, the messages it received)."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"json://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()

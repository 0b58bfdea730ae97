"""A real S3-compatible server over HTTP on 127.0.0.1 (moto's server mode), and a proxy in
front of it that injects faults: 500s for a while, a server that stays down, cut-off bodies."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto.server import ThreadedMotoServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


@dataclass
class Faults:
    errors_left: int = 0  # answer this many requests with 500 before passing through
    down: bool = False  # answer every request with 503
    cut_bodies_left: int = 0  # cut this many GET object bodies off half-way
    down_after_cut: bool = False  # and then stay down
    requests: int = 0


class FaultProxy:
    def __init__(self, upstream_port: int):
        self.faults = Faults()
        faults, lock = self.faults, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with lock:
                    faults.requests += 1
                    fail = faults.down or faults.errors_left > 0
                    faults.errors_left = max(0, faults.errors_left - 1)
                if fail:
                    payload = b"<Error><Code>InternalError</Code></Error>"
                    self.send_response(503 if faults.down else 500)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_HEADERS}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                with lock:
                    cut = (self.command == "GET" and "list-type" not in self.path
                           and len(data) > 100 and faults.cut_bodies_left > 0)
                    if cut:
                        faults.cut_bodies_left -= 1
                        faults.down = faults.down_after_cut
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in HOP_HEADERS | {"content-length"}:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)
                if cut:
                    self.close_connection = True
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def moto_port() -> Iterator[int]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server.get_host_and_port()[1]
    server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, moto_port: int, request) -> Iterator[FaultProxy]:
    """AWS environment pointing at the proxy in front of moto, and a fresh bucket."""
    with FaultProxy(moto_port) as proxy:
        bucket = "cdr-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": proxy.url,
                            "CDR_SOURCE": "s3", "CDR_S3_BUCKET": bucket,
                            "CDR_S3_PREFIX": "sinch/"}.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}")
        client.create_bucket(Bucket=bucket)
        proxy.bucket = bucket  # type: ignore[attr-defined]
        proxy.client = client  # type: ignore[attr-defined]
        yield proxy

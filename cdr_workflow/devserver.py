"""Run `dg dev` for this project on a free local port, as `make run` does, and stop it for good.

`dg dev` can ignore SIGTERM while its children keep running, so it starts in a process group of
its own and the whole group is ended (SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

START_TIMEOUT_SECONDS = 120
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # where pyproject.toml's [tool.dg] is


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dagster_dev(env: Mapping[str, str], log: IO[str] | int = subprocess.DEVNULL
                ) -> Iterator[str]:
    """Serve the project with `env`; yields the UI's base URL once it answers."""
    port = free_port()
    venv = Path(sys.executable).parent.parent
    process = subprocess.Popen(
        [str(venv / "bin" / "dg"), "dev", "-h", "127.0.0.1", "-p", str(port),
         "--log-level", "warning"],
        env={**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"},
        cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("dg dev did not start") from None
                time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

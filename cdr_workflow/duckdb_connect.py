"""DuckDB connections as the product opens them."""

from __future__ import annotations

from typing import Any

import duckdb


def connect(database: str = ":memory:", config: dict[str, Any] | None = None
            ) -> duckdb.DuckDBPyConnection:
    """A connection (and the cursors made from it) that never prints: DuckDB draws a progress
    bar on standard output for a query running over 2 s, into a user's terminal, a run's
    captured log or a parent process reading the output's lines."""
    con = duckdb.connect(database, config=config or {})
    con.execute("SET enable_progress_bar = false")
    return con

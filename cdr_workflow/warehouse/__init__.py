"""Where rows go: one `Warehouse` interface, DuckDB (embedded), PostgreSQL and Iceberg behind it."""

from __future__ import annotations

from pathlib import Path

from cdr_workflow.warehouse.base import Warehouse, among_days, as_date, other_days


def open_warehouse(url: str) -> Warehouse:
    """`duckdb:///relative/or/absolute.duckdb`, `postgresql://user:pass@host:port/db` or
    `iceberg://CATALOG/NAMESPACE`."""
    if url.startswith("duckdb:///"):
        from cdr_workflow.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(Path(url.removeprefix("duckdb:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from cdr_workflow.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(url)
    if url.startswith("iceberg://"):
        from cdr_workflow.warehouse.iceberg import IcebergWarehouse

        return IcebergWarehouse(url)
    raise ValueError(f"unsupported warehouse URL {url.split('://')[0]}://…; "
                     "use duckdb:///path, postgresql://… or iceberg://CATALOG/NAMESPACE")


__all__ = ["Warehouse", "among_days", "as_date", "open_warehouse", "other_days"]

"""Shared fixtures: a scratch workspace (drop folder, warehouse, reports) and the warehouses."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import load_definitions
from s3_fixtures import moto_port  # noqa: F401 - fixture

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from local_lake import local_lake  # noqa: E402 - benchmarks/ is not a package

from cdr_workflow.settings import Settings
from cdr_workflow.warehouse import Warehouse, open_warehouse

DAY = dt.date(2026, 11, 21)
POSTGRES_URL_VAR = "CDR_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """The test PostgreSQL server; outside CI a missing server skips, inside CI it fails."""
    url = os.environ.get(POSTGRES_URL_VAR, DEFAULT_POSTGRES_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise RuntimeError(f"PostgreSQL at {POSTGRES_URL_VAR} is required in CI") from exc
        pytest.skip(f"no PostgreSQL reachable at {url} (set {POSTGRES_URL_VAR})")
    return url


@pytest.fixture
def fresh_postgres_url(tmp_path: Path) -> str:
    """A database of our own on the test server, dropped afterwards."""
    base = postgres_url()
    name = f"cdr_test_{os.getpid()}_{abs(hash(tmp_path)) % 10**8}"
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def iceberg_catalog(moto_port: int) -> Iterator[str]:  # noqa: F811 - the fixture above
    """An Iceberg SQL catalog on the test PostgreSQL, its files on the local S3 server."""
    with local_lake(postgres_url(), moto_port=moto_port) as catalog:
        yield catalog


@pytest.fixture
def iceberg_url(iceberg_catalog: str, tmp_path: Path) -> str:
    """A namespace of our own in the test catalog."""
    return f"iceberg://{iceberg_catalog}/t{os.getpid()}_{abs(hash(tmp_path)) % 10**8}"


@pytest.fixture(params=["duckdb", "postgres", "iceberg"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/warehouse.duckdb"
    if request.param == "iceberg":
        return request.getfixturevalue("iceberg_url")
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def warehouse(warehouse_url: str) -> Warehouse:
    return open_warehouse(warehouse_url)


@pytest.fixture
def env(tmp_path: Path, warehouse_url: str) -> dict[str, str]:
    return {
        "CDR_DROP_DIR": str(tmp_path / "drop"),
        "CDR_WAREHOUSE_URL": warehouse_url,
        "CDR_REPORTS_DIR": str(tmp_path / "reports"),
        "CDR_START_DATE": "2026-11-01",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def defs(env: dict[str, str]):
    return load_definitions(env)


@pytest.fixture
def drop_dir(settings: Settings) -> Path:
    settings.drop_dir.mkdir(parents=True, exist_ok=True)
    return settings.drop_dir


SLOW_MODULES = {"test_ui", "test_cli", "test_faults", "test_benchmarks", "test_properties",
                "test_daemon", "test_parallel_backfill"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers from what a test uses: `make test-fast` leaves out the slow and the real
    services; `make test` (README, CI) runs everything."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "fresh_postgres_url" in fixtures or params.get("warehouse_url") == "postgres":
            item.add_marker(pytest.mark.postgres)
        if "iceberg_url" in fixtures or params.get("warehouse_url") == "iceberg":
            item.add_marker(pytest.mark.iceberg)
        if "s3_env" in fixtures:
            item.add_marker(pytest.mark.s3)
        module = item.module.__name__ if item.module else ""
        if module == "test_ui":
            item.add_marker(pytest.mark.browser)
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)

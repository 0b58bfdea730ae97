"""The Iceberg warehouse for real: a SQL catalog on PostgreSQL, table files on a local S3 server
over HTTP, read back with pyiceberg itself (not through the product's working copy)."""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from pyiceberg.catalog import load_catalog
from pyiceberg.expressions import EqualTo
from pyiceberg.utils.config import Config

from cdr_workflow.day_facts import read_day_facts
from cdr_workflow.demo import write_voice_file
from cdr_workflow.kinds import VOICE
from cdr_workflow.load import load_day
from cdr_workflow.reconcile import DailyReport
from cdr_workflow.sources import DEFAULT_FILE_PATTERN
from cdr_workflow.sources.local import LocalSource
from cdr_workflow.warehouse import iceberg as iceberg_module
from cdr_workflow.warehouse import open_warehouse
from cdr_workflow.warehouse.iceberg import parse_iceberg_url

DAY = dt.date(2026, 11, 21)


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    return tmp_path / "drop"


def pyiceberg_table(url: str, name: str):
    catalog, namespace = parse_iceberg_url(url)
    # pyiceberg reads the environment once, at import: read it again, the test set it since
    return load_catalog(catalog, **Config().get_catalog_config(catalog)).load_table(
        (namespace, name))


def file_rows(path: Path) -> dict[str, dict[str, str]]:
    """The file read with Python's csv module: the reference the warehouse is held to."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["CallId"]: row for row in csv.DictReader(handle, delimiter=";")}


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_day_reads_back_exact_through_pyiceberg(drop, iceberg_url):
    path = write_voice_file(drop / "voice_2026-11-21.csv", 2000, DAY)
    load_day(LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN)), open_warehouse(iceberg_url),
             VOICE, DAY, "run-1")

    table = pyiceberg_table(iceberg_url, "voice_cdrs")
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
        ("cdr_date", "identity")]
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types["amount"] == "decimal(18, 6)" and types["call_time"] == "timestamptz"
    assert [(f.name, str(f.transform)) for f in pyiceberg_table(
        iceberg_url, "cdr_billing_monthly").spec().fields] == [("month", "identity")]

    stored = table.scan(row_filter=EqualTo("cdr_date", DAY.isoformat())).to_arrow()
    expected = file_rows(path)
    assert sorted(stored.column("call_id").to_pylist()) == sorted(expected)
    for row in stored.select(["call_id", "amount", "call_time", "answer_time"]).to_pylist():
        source = expected[row["call_id"]]
        assert row["amount"] == Decimal(source["Amount"])
        assert row["call_time"] == utc(source["CallTime"])
        assert row["answer_time"] == (utc(source["AnswerTime"]) if source["AnswerTime"]
                                      else None)
    assert sum(stored.column("amount").to_pylist(), Decimal(0)) == sum(
        (Decimal(r["Amount"]) for r in expected.values()), Decimal(0))
    ledger = pyiceberg_table(iceberg_url, "cdr_files").scan().to_arrow().to_pylist()
    assert [(r["cdr_date"], r["rows_read"], r["rows_loaded"]) for r in ledger] == [
        (DAY, 2000, 2000)]


def test_rerunning_a_day_replaces_exactly_that_day(drop, iceberg_url):
    source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
    warehouse = open_warehouse(iceberg_url)
    other = DAY - dt.timedelta(days=1)
    write_voice_file(drop / f"voice_{other}.csv", 300, other, seed=3)
    write_voice_file(drop / "voice_2026-11-21.csv", 500, DAY)
    load_day(source, warehouse, VOICE, other, "other")
    for run in ("run-1", "run-2"):
        load_day(source, warehouse, VOICE, DAY, run)

    table = pyiceberg_table(iceberg_url, "voice_cdrs")
    rows = table.scan().to_arrow()
    counts = rows.group_by(["cdr_date", "load_id"]).aggregate([("call_id", "count")])
    assert sorted(counts.to_pylist(), key=str) == sorted([
        {"cdr_date": other, "load_id": "other", "call_id_count": 300},
        {"cdr_date": DAY, "load_id": "run-2", "call_id_count": 500}], key=str)
    assert len(set(rows.column("call_id").to_pylist())) == 800
    ledger = pyiceberg_table(iceberg_url, "cdr_files").scan().to_arrow()
    assert sorted(ledger.column("load_id").to_pylist()) == ["other", "run-2"]


DIE_AFTER_FIRST_COMMIT = textwrap.dedent("""
    import datetime as dt, os, re, sys
    from pathlib import Path
    from cdr_workflow.kinds import VOICE
    from cdr_workflow.load import load_day
    from cdr_workflow.sources import DEFAULT_FILE_PATTERN
    from cdr_workflow.sources.local import LocalSource
    from cdr_workflow.warehouse import open_warehouse
    from cdr_workflow.warehouse.iceberg import WorkingCopy

    drop, url = sys.argv[1:3]
    committed = WorkingCopy._commit_cdr_table
    def commit_then_die(self, table):
        committed(self, table)
        os._exit(9)  # the process dies after the rows' commit, before the ledger's
    WorkingCopy._commit_cdr_table = commit_then_die
    source = LocalSource(Path(drop), re.compile(DEFAULT_FILE_PATTERN))
    load_day(source, open_warehouse(url), VOICE, dt.date(2026, 11, 21), "dies")
""")


def test_a_run_that_dies_between_two_tables_commits_is_repaired_by_a_rerun(drop, iceberg_url):
    source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
    warehouse = open_warehouse(iceberg_url)
    write_voice_file(drop / "voice_2026-11-21.csv", 100, DAY, seed=1)
    load_day(source, warehouse, VOICE, DAY, "before")
    write_voice_file(drop / "voice_2026-11-21.csv", 150, DAY, seed=2)

    died = subprocess.run([sys.executable, "-c", DIE_AFTER_FIRST_COMMIT, str(drop), iceberg_url],
                          capture_output=True, text=True, timeout=300)
    assert died.returncode == 9, died.stderr
    # what a reader sees: the day's new rows, beside the ledger of the load before
    assert warehouse.query("SELECT load_id, COUNT(*) FROM voice_cdrs GROUP BY 1") == [
        ("dies", 150)]
    assert warehouse.query("SELECT load_id, rows_loaded FROM cdr_files") == [("before", 100)]
    assert not counts_add_up(warehouse)  # the day's check says so

    load_day(source, warehouse, VOICE, DAY, "rerun")
    assert warehouse.query("SELECT load_id, COUNT(*) FROM voice_cdrs GROUP BY 1") == [
        ("rerun", 150)]
    assert warehouse.query("SELECT load_id, rows_read, rows_loaded FROM cdr_files") == [
        ("rerun", 150, 150)]
    assert counts_add_up(warehouse)


def counts_add_up(warehouse) -> bool:
    report = DailyReport(read_day_facts(warehouse, VOICE, DAY, DAY), max_reject_ratio=0.05)
    (check,) = [c for c in report.checks() if c.name == "counts_add_up"]
    return check.passed


def test_object_storage_through_the_standard_aws_variables(drop, iceberg_url, monkeypatch):
    """A catalog configured without an S3 endpoint reaches it through AWS_ENDPOINT_URL."""
    prefix = "PYICEBERG_CATALOG__LAKE__"
    endpoint = os.environ[prefix + "S3__ENDPOINT"]
    for name in ("S3__ENDPOINT", "S3__REGION", "S3__ACCESS_KEY_ID", "S3__SECRET_ACCESS_KEY"):
        monkeypatch.delenv(prefix + name)
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    write_voice_file(drop / "voice_2026-11-21.csv", 50, DAY)
    result = load_day(LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN)),
                      open_warehouse(iceberg_url), VOICE, DAY, "run-1")
    assert result.rows_loaded == 50
    assert open_warehouse(iceberg_url).query("SELECT COUNT(*) FROM voice_cdrs") == [(50,)]


def test_a_bad_iceberg_url_is_named():
    with pytest.raises(ValueError, match="names its catalog"):
        parse_iceberg_url("iceberg:///cdr")
    assert parse_iceberg_url("iceberg://lake") == ("lake", "cdr")


def test_a_day_written_in_several_batches_replaces_the_day_once(drop, iceberg_url, monkeypatch):
    monkeypatch.setattr(iceberg_module, "COMMIT_BATCH_ROWS", 100)
    source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
    warehouse = open_warehouse(iceberg_url)
    path = write_voice_file(drop / "voice_2026-11-21.csv", 250, DAY)
    for run in ("run-1", "run-2"):
        load_day(source, warehouse, VOICE, DAY, run)
    rows = pyiceberg_table(iceberg_url, "voice_cdrs").scan().to_arrow()
    assert sorted(rows.column("call_id").to_pylist()) == sorted(file_rows(path))
    assert set(rows.column("load_id").to_pylist()) == {"run-2"}


def test_a_first_load_that_loses_the_race_for_the_namespace_goes_on(iceberg_url, monkeypatch):
    """Two first loads at once: the SQL catalog lets both try to insert the namespace, and the
    later one gets a unique-key error while the namespace is there."""
    warehouse = open_warehouse(iceberg_url)
    create = type(warehouse.catalog).create_namespace_if_not_exists

    def lose_the_race(catalog, namespace, *args, **kwargs):
        create(catalog, namespace, *args, **kwargs)  # the other load's insert
        raise RuntimeError("duplicate key value violates unique constraint")

    monkeypatch.setattr(type(warehouse.catalog), "create_namespace_if_not_exists",
                        lose_the_race)
    warehouse.ensure_tables()
    assert warehouse.query("SELECT COUNT(*) FROM cdr_files") == [(0,)]

    other = open_warehouse(iceberg_url.replace(parse_iceberg_url(iceberg_url)[1], "absent_ns"))
    monkeypatch.setattr(type(other.catalog), "create_namespace_if_not_exists",
                        lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("down")))
    with pytest.raises(RuntimeError, match="down"):  # not there: the error stands
        other.ensure_tables()

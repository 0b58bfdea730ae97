"""No credential leaks into logs, metadata, reports or the warehouse; keyed pseudonymisation of
phone numbers and user ids."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import dagster as dg
import pytest
from helpers import PT_HEADER, line, load_definitions, pt_row

from cdr_workflow.demo import write_day
from cdr_workflow.kinds import VOICE
from cdr_workflow.load import load_day
from cdr_workflow.privacy import token
from cdr_workflow.settings import Settings
from cdr_workflow.sources import DEFAULT_FILE_PATTERN
from cdr_workflow.sources.local import LocalSource

DAY = dt.date(2026, 11, 21)
PASSWORD = "Sup3rS3cretPassw0rd"
KEY = "a-key-of-the-customer-0123456789"


def test_the_warehouse_password_appears_in_no_log_metadata_report_or_table(
        fresh_postgres_url, tmp_path):
    # the test server trusts local connections, so any password works and must not leak
    url = fresh_postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    env = {"CDR_DROP_DIR": str(tmp_path / "drop"), "CDR_WAREHOUSE_URL": url,
           "CDR_START_DATE": "2026-11-01", "CDR_REPORTS_DIR": str(tmp_path / "reports")}
    settings = Settings.from_env(env)
    assert PASSWORD not in repr(settings)
    write_day(tmp_path / "drop", DAY, rows_per_file=20)
    (tmp_path / "drop" / "voice_phone_terminated_2026-11-20.csv").write_bytes(b"\x1f\x8bbad")
    defs = load_definitions(env)
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("cdr_day_job")
        assert job.execute_in_process(partition_key=DAY.isoformat(), instance=instance).success
        failed = job.execute_in_process(partition_key="2026-11-20", instance=instance,
                                        raise_on_error=False)
        assert not failed.success
        logs = [str(entry) for run in instance.get_runs() for entry in
                instance.all_logs(run.run_id)]
    assert any("cannot decompress" in entry for entry in logs)
    assert not [entry for entry in logs if PASSWORD in entry]
    for report in (tmp_path / "reports").rglob("*"):
        assert report.is_dir() or PASSWORD not in report.read_text()
    warehouse = load_definitions(env).resources["cdr"].warehouse
    for table in ("cdr_files", "cdr_rejects", "cdr_reconciliation_daily", "voice_cdrs"):
        assert PASSWORD not in str(warehouse.query(f"SELECT * FROM {table}"))


SECRETS = re.compile(r"AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY")
# a URL with a password, other than the documented placeholders (README's `cdr:secret@` and
# `user:pass@`, compose's `${DAGSTER_PG_PASSWORD...}`); tests hold deliberately fake ones,
# to prove they never leak, so they are not scanned for this
URL_PASSWORD = re.compile(r"postgresql://[^:/\s]+:(?!\$\{|secret@|pass@)[^@\s]+@")


def test_no_credential_is_committed():
    root = Path(__file__).resolve().parent.parent
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    for name in tracked.stdout.split():
        path = root / name
        if path.suffix in {".png", ".gz"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        assert not SECRETS.search(text), name
        assert name.startswith("tests/") or not URL_PASSWORD.search(text), name


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_pseudonymisation_hides_numbers_but_keeps_them_joinable(tmp_path, warehouse):
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = [pt_row("a", From="+46700000001", To="+46700000002", UserId="alice"),
            pt_row("b", From="+46700000001", To="+46700000003", UserId="bob"),
            pt_row("c", From="+46700000009", Duration="-1")]  # rejected
    (drop / "voice_2026-11-21.csv").write_text(PT_HEADER + "\n" + "".join(
        line(r) + "\n" for r in rows))
    source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
    load_day(source, warehouse, VOICE, DAY, "run-1", pseudonymisation_key=KEY.encode())
    stored = warehouse.query("SELECT call_id, from_endpoint, to_endpoint, user_id "
                             "FROM voice_cdrs ORDER BY call_id")
    assert stored[0][1] == stored[1][1] == token(KEY.encode(), "+46700000001")  # joinable
    assert stored[0][2] != stored[1][2]
    assert stored[0][3] == token(KEY.encode(), "alice")
    everything = str(stored) + str(warehouse.query("SELECT * FROM cdr_rejects"))
    assert "+4670000000" not in everything and "alice" not in everything
    assert warehouse.query("SELECT raw_line IS NULL, reasons FROM cdr_rejects") == [
        (True, "Duration is negative: -1")]
    assert token(b"another key of sixteen+", "+46700000001") != stored[0][1]

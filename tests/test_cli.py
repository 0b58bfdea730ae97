"""The console script and the Dagster CLI, as a user runs them."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from helpers import PT_HEADER, line, pt_row

from cdr_workflow.cli import main
from cdr_workflow.demo import write_day

DAY = dt.date(2026, 11, 21)
DAGSTER = str(Path(sys.executable).parent / "dagster")


def test_demo_writes_every_layout_for_each_day_and_keeps_existing_days(tmp_path, capsys):
    assert main(["demo", "--days", "2", "--rows", "10", "--drop-dir", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 10
    assert {n.split("_2")[0] for n in names} == {
        "verification", "voice_phone_terminated", "voice_phone_originated", "voice_app_app",
        "voice_sip_terminated"}
    assert main(["demo", "--days", "2", "--drop-dir", str(tmp_path)]) == 0
    assert "wrote 0 files" in capsys.readouterr().out


def test_validate_prints_counts_and_reasons(tmp_path, capsys):
    path = tmp_path / "voice_2026-11-21.csv"
    path.write_text(f"{PT_HEADER}\n{line(pt_row('a'))}\n{line(pt_row('b', Duration='-2'))}\n")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 lines read, 1 valid, 1 rejected" in out
    assert "line 3: Duration is negative" in out
    assert main(["validate", str(path), "--strict"]) == 3


def test_validate_lists_rejected_lines_in_file_order(tmp_path, capsys):
    """A line breaking a rule is judged after the lines that do not type: listed in order."""
    path = tmp_path / "voice_2026-11-21.csv"
    path.write_text(f"{PT_HEADER}\n{line(pt_row('a', Duration='-2'))}\n"
                    f"{line(pt_row('b', Amount='abc'))}\n")
    assert main(["validate", str(path)]) == 0
    listed = [n for n in capsys.readouterr().out.split() if n.endswith(":") and n[:-1].isdigit()]
    assert listed == ["2:", "3:"]


def test_validate_fails_on_a_file_it_cannot_read(tmp_path, capsys):
    path = tmp_path / "voice_2026-11-21.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08 not really gzip")
    assert main(["validate", str(path)]) == 1
    assert "cannot decompress" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "missing_voice.csv")]) == 1


@pytest.fixture
def project_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "DAGSTER_HOME": str(home), "CDR_DROP_DIR": str(tmp_path / "drop"),
            "CDR_WAREHOUSE_URL": f"duckdb:///{tmp_path}/warehouse.duckdb",
            "CDR_REPORTS_DIR": str(tmp_path / "reports"), "CDR_START_DATE": "2026-11-01"}


def dagster(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSTER, *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_dagster_definitions_validate(project_env):
    result = dagster(project_env, "definitions", "validate", "-m", "cdr_workflow.definitions")
    assert result.returncode == 0, result.stderr[-2000:]


def test_dagster_asset_materialize_partition_and_range(project_env, tmp_path):
    for day in (DAY - dt.timedelta(days=1), DAY):
        write_day(tmp_path / "drop", day, rows_per_file=20)
    select = ["--select", "group:verification or group:voice"]
    args = ["asset", "materialize", "-m", "cdr_workflow.definitions", *select]
    first = dagster(project_env, *args, "--partition", DAY.isoformat())
    assert first.returncode == 0, first.stderr[-3000:]
    ranged = dagster(project_env, *args, "--partition-range", "2026-11-20...2026-11-21")
    assert ranged.returncode == 0, ranged.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        per_day = con.sql("SELECT cdr_date, kind, COUNT(*), SUM(rows_read), "
                          "SUM(rows_loaded + rows_rejected) FROM cdr_files "
                          "GROUP BY ALL ORDER BY ALL").fetchall()
    assert [(str(d), k, n) for d, k, n, _, _ in per_day] == [
        ("2026-11-20", "verification", 1), ("2026-11-20", "voice", 4),
        ("2026-11-21", "verification", 1), ("2026-11-21", "voice", 4)]
    assert all(read == accounted for *_, read, accounted in per_day)

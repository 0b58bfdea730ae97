"""The real daemon, as users run it: `dg dev` with both sensors on, files dropped into the folder
while it runs, and the outcome read back through Dagster's GraphQL API, the warehouse and a
loopback alert webhook.

Four days land: two good ones, one with a corrupt voice file (its voice load fails, its
verification loads), one whose phone-terminated header renames `Amount` (it loads, but the
day's `key_columns_present` check fails). Own records arrive for one good day before its CDRs
and for the other after it has loaded. The daemon must load the days, match the own records,
keep the month's billing equal to the daily tables and send the two alerts, with no run failing
but the corrupt day's voice load. The `dg dev` log and a summary of what the daemon did go to
test-artifacts/daemon/.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import loopback_webhook

from cdr_workflow.demo import write_day
from cdr_workflow.devserver import dagster_dev

ARTIFACTS = Path(os.environ.get("CDR_TEST_ARTIFACTS", "test-artifacts")) / "daemon"
TODAY = dt.datetime.now(dt.UTC).date()
START = TODAY - dt.timedelta(days=6)
EARLY = TODAY - dt.timedelta(days=5)  # good; its own records land before its CDRs
CORRUPT = TODAY - dt.timedelta(days=4)  # its app-app voice file is not gzip
RENAMED = TODAY - dt.timedelta(days=3)  # its phone-terminated header says Amt, not Amount
LATE = TODAY - dt.timedelta(days=2)  # good; its own records land after it has loaded
DAYS = (EARLY, CORRUPT, RENAMED, LATE)
GOOD_DAYS = (EARLY, LATE)
UNKNOWN_ID = "pt-never-billed-000000001"
SETTLE_TIMEOUT = 300  # seconds from the server answering to everything done
STEP_TIMEOUT = 210  # seconds (from the server answering) to wait for the daemon to match a
# day before dropping the files that must come after that match; then they are dropped anyway
POLL_SECONDS = 3
ACTIVE = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}
SENSORS = ("cdr_file_sensor", "cdr_follow_up")
DAGSTER_YAML = """\
telemetry:
  enabled: false
python_logs:
  python_log_level: INFO
concurrency:
  pools:
    default_limit: 1
"""

RUNS_QUERY = """
{ runsOrError(limit: 1000) {
    __typename
    ... on Runs { results { runId status jobName startTime endTime tags { key value } } }
    ... on PythonError { message } } }
"""
TICKS_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors {
    name sensorState { status ticks(limit: 100) {
      status timestamp endTimestamp runIds error { message } } } } } } } }
"""
MATERIALIZATIONS_QUERY = """
query ($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(limit: 500) {
      timestamp partition runId
      metadataEntries { label
        ... on IntMetadataEntry { intValue }
        ... on TextMetadataEntry { text } } } } } }
"""
CHECK_QUERY = """
query ($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 200) {
    runId status partition timestamp
    evaluation { success severity partition
      metadataEntries { label ... on TextMetadataEntry { text } } } } }
"""
FAILURES_QUERY = """
query ($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename
      ... on ExecutionStepFailureEvent { stepKey error { message } } } }
    ... on PythonError { message } } }
"""


def gql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql", json.dumps({"query": query, "variables": variables or {}}).encode(),
        {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
    return body["data"]


def runs(url: str) -> list[dict[str, Any]]:
    result = gql(url, RUNS_QUERY)["runsOrError"]
    assert result["__typename"] == "Runs", result
    for run in result["results"]:
        run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
    return result["results"]


def sensor_ticks(url: str) -> dict[str, dict[str, Any]]:
    nodes = gql(url, TICKS_QUERY)["repositoriesOrError"]["nodes"]
    return {s["name"]: s["sensorState"] for node in nodes for s in node["sensors"]}


def materializations(url: str, asset: str) -> list[dict[str, Any]]:
    """Oldest first, each with its metadata as a dict and its timestamp in seconds."""
    result = gql(url, MATERIALIZATIONS_QUERY, {"key": {"path": [asset]}})["assetOrError"]
    if result["__typename"] != "Asset":  # not materialized yet
        return []
    out = []
    for m in result["assetMaterializations"]:
        out.append({"partition": m["partition"], "runId": m["runId"],
                    "timestamp": int(m["timestamp"]) / 1000,
                    "metadata": {e["label"]: e.get("intValue", e.get("text"))
                                 for e in m["metadataEntries"]}})
    return sorted(out, key=lambda m: m["timestamp"])


def check_executions(url: str, asset: str, check: str) -> list[dict[str, Any]]:
    return gql(url, CHECK_QUERY, {"key": {"path": [asset]}, "check": check}
               )["assetCheckExecutions"]


def step_failures(url: str, run_id: str) -> list[str]:
    result = gql(url, FAILURES_QUERY, {"runId": run_id})["logsForRun"]
    assert result["__typename"] == "EventConnection", result
    return [e["error"]["message"] for e in result["events"]
            if e["__typename"] == "ExecutionStepFailureEvent"]


def relevant(run: dict[str, Any]) -> bool:
    """Every run but the 06:00 UTC schedule's load of yesterday (no files: it fails on
    purpose), which only happens when the test straddles 06:00 UTC."""
    return not ("dagster/schedule_name" in run["tags"]
                and run["tags"].get("dagster/partition") not in {d.isoformat() for d in DAYS})


# ---------------------------------------------------------------------------------------------
# the files


def stage_day(stage: Path, day: dt.date) -> list[Path]:
    """A good day written away from the drop folder (moved in later, whole)."""
    return write_day(stage / day.isoformat(), day, rows_per_file=30)


def drop(files: list[Path], folder: Path) -> float:
    """Move staged files into the folder (a rename: never half a file); returns when."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        os.replace(f, folder / f.name)
    return time.time()


def cdr_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter=";"))


def own_records(path: Path, rows: list[dict[str, str]]) -> Path:
    """`expected_voice_<day>.csv`: the given CDRs as the customer recorded them, plus one id
    Sinch never billed."""
    lines = ["id;timestamp;amount;currency"]
    lines += [f"{r['CallId']};{r['CallTime']};{r['Amount']};{r['Currency']}" for r in rows]
    lines.append(f"{UNKNOWN_ID};{rows[0]['CallTime']};0.01;EUR")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# the daemon at work


@dataclass
class Outcome:
    runs: list[dict[str, Any]]
    failures: dict[str, list[str]]  # failed run id → its step failure messages
    checks: dict[tuple[str, str], list[dict[str, Any]]]  # (asset, check) → executions
    early_match_before_load: dict[str, Any] | None  # EARLY's match seen before its CDRs landed
    late_match_before_records: dict[str, Any] | None  # LATE's match before its own records
    expected_ids: dict[dt.date, list[str]]  # own-records ids per day, matched ones first
    sensor_errors: list[str]
    alerts: list[dict[str, Any]]
    warehouse: Path


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[str, list[dict]]]:
    with loopback_webhook() as hook:
        yield hook


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, webhook) -> Iterator[Outcome]:
    hook_url, received = webhook
    root = tmp_path_factory.mktemp("daemon")
    home, drop_dir, expected_dir, stage = (root / "home", root / "drop", root / "expected",
                                           root / "stage")
    for folder in (home, drop_dir, expected_dir, stage):
        folder.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    warehouse = root / "warehouse.duckdb"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CDR_")},
           "DAGSTER_HOME": str(home), "CDR_DROP_DIR": str(drop_dir),
           "CDR_EXPECTED_DIR": str(expected_dir), "CDR_WAREHOUSE_URL": f"duckdb:///{warehouse}",
           "CDR_REPORTS_DIR": str(root / "reports"), "CDR_START_DATE": START.isoformat(),
           "CDR_ALERT_URLS": hook_url}

    # everything written up front, away from the folders the daemon watches
    staged = {day: stage_day(stage, day) for day in DAYS}
    (stage / CORRUPT.isoformat() / f"voice_app_app_{CORRUPT}.csv").write_bytes(
        b"\x1f\x8b not gzip")
    renamed = stage / RENAMED.isoformat() / f"voice_phone_terminated_{RENAMED}.csv"
    header, rest = renamed.read_text(encoding="utf-8").split("\n", 1)
    assert ";Amount;" in header, header
    renamed.write_text(header.replace(";Amount;", ";Amt;") + "\n" + rest, encoding="utf-8")
    early_rows = cdr_rows(stage / EARLY.isoformat() / f"voice_phone_terminated_{EARLY}.csv")[:2]
    late_rows = cdr_rows(stage / LATE.isoformat() / f"voice_phone_originated_{LATE}.csv")[:2]
    early_records = own_records(stage / "own" / f"expected_voice_{EARLY}.csv", early_rows)
    late_records = own_records(stage / "own" / f"expected_voice_{LATE}.csv", late_rows)
    expected_ids = {EARLY: [r["CallId"] for r in early_rows] + [UNKNOWN_ID],
                    LATE: [r["CallId"] for r in late_rows] + [UNKNOWN_ID]}

    timeline: list[str] = []
    started = time.monotonic()

    def note(what: str) -> None:
        timeline.append(f"{time.monotonic() - started:6.1f}s {what}")

    log_path = root / "dg-dev.log"
    summary: dict[str, Any] = {"timeline": timeline, "alerts": received}
    try:
        with log_path.open("w") as log, dagster_dev(env, log) as url:
            answered = time.monotonic()
            note(f"dg dev answers at {url}")
            last_drop = drop([early_records], expected_dir)
            note(f"own records of {EARLY} dropped")
            last_drop = drop(staged[CORRUPT] + staged[RENAMED] + staged[LATE], drop_dir)
            note(f"CDR files of {CORRUPT}, {RENAMED}, {LATE} dropped")
            early_before = late_before = None
            early_dropped = late_dropped = False
            deadline = answered + SETTLE_TIMEOUT
            while True:
                matches = materializations(url, "voice_expected_match")
                if not early_dropped:
                    seen = [m for m in matches if m["partition"] == EARLY.isoformat()
                            and m["metadata"].get("expected_files") == 1]
                    if seen or time.monotonic() - answered > STEP_TIMEOUT:
                        early_before = seen[0] if seen else None
                        last_drop = drop(staged[EARLY], drop_dir)
                        early_dropped = True
                        note(f"CDR files of {EARLY} dropped (match before: {early_before})")
                if not late_dropped:
                    seen = [m for m in matches if m["partition"] == LATE.isoformat()]
                    if seen or time.monotonic() - answered > STEP_TIMEOUT:
                        late_before = seen[0] if seen else None
                        last_drop = drop([late_records], expected_dir)
                        late_dropped = True
                        note(f"own records of {LATE} dropped (match before: {late_before})")
                all_runs = runs(url)
                ticks = sensor_ticks(url)
                if early_dropped and late_dropped and settled(all_runs, ticks, last_drop):
                    note(f"settled after {len(all_runs)} runs")
                    break
                if time.monotonic() > deadline:
                    summary.update(runs=all_runs, ticks=ticks)
                    raise TimeoutError(
                        f"the daemon did not settle within {SETTLE_TIMEOUT}s of starting: "
                        + ", ".join(f"{r['jobName']} {r['tags'].get('dagster/partition', '')}"
                                    f" {r['status']}" for r in all_runs if r["status"] in ACTIVE)
                        + "\ntimeline:\n" + "\n".join(timeline))
                time.sleep(POLL_SECONDS)

            all_runs = runs(url)
            ticks = sensor_ticks(url)
            summary.update(runs=all_runs, ticks=ticks)
            failures = {r["runId"]: step_failures(url, r["runId"])
                        for r in all_runs if r["status"] != "SUCCESS"}
            checks = {(asset, check): check_executions(url, asset, check)
                      for asset in ("voice_cdrs", "verification_cdrs")
                      for check in ("key_columns_present", "counts_add_up", "no_duplicate_ids",
                                    "amounts_match_file")}
            sensor_errors = [f"{name}: {t['error']['message']}"
                             for name, state in ticks.items() for t in state["ticks"]
                             if t["status"] == "FAILURE"]
        note("dg dev stopped")
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if log_path.exists():
            shutil.copy(log_path, ARTIFACTS / "dg-dev.log")
        (ARTIFACTS / "summary.json").write_text(json.dumps(summary, indent=1, default=str))

    yield Outcome(runs=all_runs, failures=failures, checks=checks,
                  early_match_before_load=early_before, late_match_before_records=late_before,
                  expected_ids=expected_ids, sensor_errors=sensor_errors, alerts=received,
                  warehouse=warehouse)


def settled(all_runs: list[dict[str, Any]], ticks: dict[str, dict[str, Any]],
            last_drop: float) -> bool:
    """No run waits or runs, and each sensor has looked again since the last file landed and
    the last run ended, and asked for nothing."""
    if any(r["status"] in ACTIVE for r in all_runs):
        return False
    last_activity = max([last_drop] + [r["endTime"] or 0 for r in all_runs])
    for name in SENSORS:
        done = [t for t in ticks[name]["ticks"] if t["status"] in ("SKIPPED", "SUCCESS")]
        latest = max(done, key=lambda t: t["timestamp"], default=None)
        if latest is None or latest["timestamp"] <= last_activity or latest["runIds"]:
            return False
    return True


def connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + 60
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as exc:  # a process of the stopped server not gone yet
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def partition_of(run: dict[str, Any]) -> str:
    tags = run["tags"]
    return tags.get("dagster/partition") or (
        f"{tags.get('dagster/asset_partition_range_start')}..."
        f"{tags.get('dagster/asset_partition_range_end')}")


def describe(run: dict[str, Any]) -> str:
    return (f"{run['jobName']} {run['tags'].get('cdr_kind', '')} {partition_of(run)} "
            f"{run['status']} ({run['runId']})")


# ---------------------------------------------------------------------------------------------
# what must be true


def test_the_sensors_never_failed(outcome: Outcome):
    assert not outcome.sensor_errors, "sensor ticks failed:\n" + "\n".join(outcome.sensor_errors)


def test_only_the_corrupt_days_voice_load_fails(outcome: Outcome):
    considered = [r for r in outcome.runs if relevant(r)]
    failed = [r for r in considered if r["status"] != "SUCCESS"]
    assert failed, "the corrupt day's voice load did not fail:\n" + "\n".join(
        describe(r) for r in considered)
    corrupt_file = f"voice_app_app_{CORRUPT}.csv"
    for run in failed:
        messages = outcome.failures[run["runId"]]
        assert (run["status"] == "FAILURE" and run["jobName"] == "cdr_day_job"
                and run["tags"].get("cdr_kind") == "voice"
                and run["tags"].get("dagster/partition") == CORRUPT.isoformat()), (
            f"a run failed that should not have: {describe(run)}: {messages}")
        assert any(corrupt_file in m and "cannot decompress" in m for m in messages), (
            f"{describe(run)} failed, but not for {corrupt_file}: {messages}")

    loads = {(r["tags"].get("cdr_kind"), r["tags"].get("dagster/partition")): r["status"]
             for r in considered if r["jobName"] == "cdr_day_job"}
    for day in DAYS:
        assert loads.get(("verification", day.isoformat())) == "SUCCESS", (
            f"verification of {day} did not load: {loads}")
        assert loads.get(("voice", day.isoformat())) == (
            "FAILURE" if day == CORRUPT else "SUCCESS"), f"voice of {day}: {loads}"
    jobs = {r["jobName"] for r in considered}
    assert {"cdr_match_job", "cdr_billing_job"} <= jobs, f"cdr_follow_up ran nothing: {jobs}"


def latest_by_partition(executions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for e in sorted(executions, key=lambda e: e["timestamp"]):
        latest[e["partition"]] = e
    return latest


def test_key_columns_present_fails_for_the_renamed_day_only(outcome: Outcome):
    executions = outcome.checks[("voice_cdrs", "key_columns_present")]
    assert all(e["partition"] for e in executions), f"an unpartitioned execution: {executions}"
    by_day = latest_by_partition(executions)
    renamed = by_day.get(RENAMED.isoformat())
    assert renamed and renamed["status"] == "FAILED", (
        f"key_columns_present on voice_cdrs for {RENAMED} (Amount renamed Amt): {renamed}")
    assert renamed["evaluation"]["severity"] == "ERROR" and not renamed["evaluation"]["success"]
    detail = {e["label"]: e.get("text") for e in renamed["evaluation"]["metadataEntries"]}
    assert detail.get("detail") == f"voice_phone_terminated_{RENAMED}.csv lacks Amount", detail
    for day in GOOD_DAYS:
        good = by_day.get(day.isoformat())
        assert good and good["status"] == "SUCCEEDED", (
            f"key_columns_present on voice_cdrs for good day {day}: {good}")
    verification = latest_by_partition(
        outcome.checks[("verification_cdrs", "key_columns_present")])
    for day in DAYS:
        execution = verification.get(day.isoformat())
        assert execution and execution["status"] == "SUCCEEDED", (
            f"key_columns_present on verification_cdrs for {day}: {execution}")


def test_the_other_error_checks_pass_on_every_loaded_day(outcome: Outcome):
    for (asset, check), executions in outcome.checks.items():
        if check == "key_columns_present":
            continue
        by_day = latest_by_partition(executions)
        for day in DAYS:
            if asset == "voice_cdrs" and day == CORRUPT:
                continue  # never loaded
            execution = by_day.get(day.isoformat())
            assert execution and execution["status"] == "SUCCEEDED", (
                f"{check} on {asset} for {day}: {execution}")


def test_own_records_are_matched_whether_they_land_before_or_after_the_cdrs(outcome: Outcome):
    before = outcome.early_match_before_load
    assert before is not None, (
        f"cdr_follow_up did not match {EARLY}'s own records before its CDRs landed "
        f"(within {STEP_TIMEOUT}s)")
    assert str(before["metadata"].get("status", "")).startswith("waiting"), before
    assert outcome.late_match_before_records is not None, (
        f"cdr_follow_up did not match {LATE} after it loaded (within {STEP_TIMEOUT}s)")
    assert outcome.late_match_before_records["metadata"].get("expected_files") == 0

    with connect_read_only(outcome.warehouse) as con:
        for day, ids in outcome.expected_ids.items():
            found = dict(con.execute(
                "SELECT id, status FROM cdr_expected_match WHERE kind = 'voice' "
                "AND cdr_date = ? AND status <> 'unexpected_in_cdrs'", [day]).fetchall())
            wanted = {**dict.fromkeys(ids[:-1], "matched"), UNKNOWN_ID: "missing_in_cdrs"}
            assert found == wanted, f"own records of {day} in cdr_expected_match"
            (unexpected,) = con.execute(
                "SELECT COUNT(*) FROM cdr_expected_match WHERE kind = 'voice' AND cdr_date = ? "
                "AND status = 'unexpected_in_cdrs'", [day]).fetchone()
            (loaded,) = con.execute("SELECT COUNT(*) FROM voice_cdrs WHERE cdr_date = ?",
                                    [day]).fetchone()
            assert unexpected == loaded - len(ids[:-1]), (
                f"{day}: every other loaded voice CDR is unexpected_in_cdrs")


REFERENCE_BILLING = """
SELECT 'verification', currency, application_key, method, COUNT(*), SUM(amount)
FROM verification_cdrs WHERE cdr_date BETWEEN $first AND $last GROUP BY ALL
UNION ALL
SELECT 'voice', currency, application_key, call_type, COUNT(*), SUM(amount)
FROM voice_cdrs WHERE cdr_date BETWEEN $first AND $last GROUP BY ALL
"""


def test_billing_equals_the_daily_tables(outcome: Outcome):
    months = sorted({day.replace(day=1) for day in DAYS})
    with connect_read_only(outcome.warehouse) as con:
        for month in months:
            last = (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            billed = {tuple(row[:4]): (row[4], row[5]) for row in con.execute(
                "SELECT kind, currency, application_key, product, items, amount "
                "FROM cdr_billing_monthly WHERE month = ?", [month]).fetchall()}
            reference = {tuple(row[:4]): (row[4], row[5]) for row in con.execute(
                REFERENCE_BILLING, {"first": month, "last": last}).fetchall()}
            assert reference, f"nothing loaded in {month:%Y-%m}"
            assert set(billed) == set(reference), (
                f"invoice lines of {month:%Y-%m}: only billed {set(billed) - set(reference)}, "
                f"only in the tables {set(reference) - set(billed)}")
            wrong = {key: (billed[key], reference[key]) for key in reference
                     if billed[key][0] != reference[key][0]
                     or Decimal(billed[key][1] or 0) != Decimal(reference[key][1] or 0)}
            assert not wrong, f"billed vs daily tables, {month:%Y-%m}: {wrong}"
            days = {d for (d,) in con.execute(
                "SELECT cdr_date FROM voice_cdrs WHERE cdr_date BETWEEN $first AND $last UNION "
                "SELECT cdr_date FROM verification_cdrs WHERE cdr_date BETWEEN $first AND $last",
                {"first": month, "last": last}).fetchall()}
            assert {d for d in DAYS if d.replace(day=1) == month} <= days


def test_alerts_reach_the_webhook(outcome: Outcome):
    titles = [m.get("title", "") for m in outcome.alerts]
    failed = [m for m in outcome.alerts
              if "failed to load" in m.get("title", "") and CORRUPT.isoformat() in m["title"]]
    assert failed, f"no 'failed to load' alert for {CORRUPT}: {titles}"
    assert all(f"voice_app_app_{CORRUPT}.csv" in m["message"] for m in failed), failed
    assert any("check key_columns_present failed" in t and RENAMED.isoformat() in t
               for t in titles), f"no key_columns_present alert for {RENAMED}: {titles}"
    for day in GOOD_DAYS:
        assert not [t for t in titles if day.isoformat() in t and "fraud" not in t], (
            f"an alert for the good day {day}: {titles}")

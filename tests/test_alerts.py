"""Alerts reach a webhook (Apprise `json://`) served on loopback, and never fail a load."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import dagster as dg
import pytest
from helpers import load_definitions, loopback_webhook

from cdr_workflow.demo import write_day

pytestmark = pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
DAY = dt.date(2026, 11, 21)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    with loopback_webhook() as hook:
        yield hook


def run_days(defs, *days: dt.date) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return defs.resolve_job_def("cdr_day_job").execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": str(days[0]),
                  "dagster/asset_partition_range_end": str(days[-1])})


def test_a_failed_day_and_a_missing_file_each_send_one_alert(env, drop_dir, webhook):
    url, received = webhook
    write_day(drop_dir, DAY, rows_per_file=10)
    (drop_dir / f"voice_app_app_{DAY}.csv").write_bytes(b"\x1f\x8b not gzip")
    secret_url = env["CDR_WAREHOUSE_URL"]
    result = run_days(load_definitions({**env, "CDR_ALERT_URLS": url}),
                      DAY - dt.timedelta(days=1), DAY)
    assert not result.success
    titles = sorted(m["title"] for m in received)
    assert titles == [
        "cdr_workflow: verification CDRs for 2026-11-20 have not arrived",
        "cdr_workflow: voice CDRs for 2026-11-20 have not arrived",
        "cdr_workflow: voice CDRs for 2026-11-21 failed to load"]
    failed = next(m for m in received if "failed to load" in m["title"])
    assert "voice_app_app_2026-11-21.csv" in failed["message"]
    assert "cannot decompress" in failed["message"]
    assert all(m["type"] == "failure" for m in received)
    assert not [m for m in received if secret_url in json.dumps(m)]


def test_an_alert_that_cannot_be_sent_does_not_fail_the_load(env, drop_dir, free_port):
    write_day(drop_dir, DAY, rows_per_file=10)
    (drop_dir / f"voice_app_app_{DAY}.csv").write_bytes(b"\x1f\x8b not gzip")
    defs = load_definitions({**env, "CDR_ALERT_URLS": f"json://127.0.0.1:{free_port}/nobody"})
    result = run_days(defs, DAY)
    failures = [e.step_failure_data.user_failure_data.description
                for e in result.all_events if e.is_step_failure]
    # the voice day fails for its corrupt file, not for the alert; verification loads
    assert len(failures) == 1 and "cannot decompress" in failures[0]


@pytest.fixture
def free_port() -> int:
    from cdr_workflow.devserver import free_port

    return free_port()

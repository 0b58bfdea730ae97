"""The Dagster web UI in a real browser (Debian's chromium driven by Playwright): the asset
graph, a three-day backfill launched from the UI with one broken day, the failed day and its
reason, and a reconciliation report. Screenshots of each step go to test-artifacts/ui/."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdr_workflow.demo import write_day
from cdr_workflow.devserver import dagster_dev

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("CDR_TEST_ARTIFACTS", "test-artifacts")) / "ui"
DAYS = [dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)]
BROKEN_DAY = DAYS[1]
START = dt.date(2026, 11, 15)

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is required in CI (apt-get install chromium)")
    pytest.skip(f"no {CHROMIUM}: apt-get install chromium to run the browser test",
                allow_module_level=True)

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def ui_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui")


@pytest.fixture(scope="module")
def dagster_ui(ui_root: Path) -> Iterator[str]:
    """`dg dev` on a free port, with its own DAGSTER_HOME, drop folder and warehouse."""
    root = ui_root
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n")
    for day in DAYS:
        write_day(root / "drop", day, rows_per_file=40)
    (root / "drop" / f"voice_app_app_{BROKEN_DAY}.csv").write_bytes(b"\x1f\x8b not gzip")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CDR_DROP_DIR": str(root / "drop"),
           "CDR_WAREHOUSE_URL": f"duckdb:///{root / 'warehouse.duckdb'}",
           "CDR_REPORTS_DIR": str(root / "reports"), "CDR_START_DATE": str(START),
           "CDR_SENSOR_STATUS": "stopped"}  # the backfill, not the sensor, loads the days
    try:
        with (root / "dagster-dev.log").open("w") as log, dagster_dev(env, log) as url:
            yield url
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "dagster-dev.log", ARTIFACTS / "dagster-dev.log")


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def page(dagster_ui: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, base_url=dagster_ui)
        page.set_default_timeout(30_000)
        # a fresh browser gets a "Join the Dagster community" dialog, whenever it likes: the
        # flag its dismissal stores (key of Dagster's CommunityNux) keeps it away, the
        # handler dismisses it should it come anyway
        page.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
        page.add_locator_handler(page.get_by_text("Connect with thousands"),
                                 lambda: skip_community_dialog(page))
        yield page
        browser.close()


def skip_community_dialog(page) -> None:
    """Dismiss the dialog, even when it opens over another one (which blocks a plain click)."""
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Skip").first.click(timeout=5_000, force=True)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def backfill_figures(text: str, asset: str) -> list[int]:
    """The four counts the backfill page shows after an asset's progress bar."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    at = lines.index(asset)
    while not lines[at].endswith("completed"):
        at += 1
    return [int(n) for n in lines[at + 1:at + 5]]


def test_asset_graph_backfill_failed_day_and_report(page, ui_root):
    page.goto("/asset-groups")
    page.get_by_text("verification", exact=True).first.wait_for()
    page.get_by_text("voice", exact=True).first.wait_for()
    page.get_by_text("billing", exact=True).first.wait_for()
    shot(page, "1-asset-graph")

    # the voice group: its six daily assets (the whole graph also holds the monthly billing)
    page.goto("/locations/cdr_workflow/asset-groups/voice")
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Launch runs to materialize 5 assets").wait_for()
    days = (dt.datetime.now(dt.UTC).date() - START).days  # every complete day since the start
    dialog.get_by_text(f"Showing {days} of {days} partitions").wait_for()  # the picker is ready
    partitions = dialog.locator("input[type=text]").first
    partitions.click()
    partitions.fill(f"[{DAYS[0]}...{DAYS[-1]}]")
    partitions.press("Enter")
    dialog.get_by_text("3 partitions").wait_for()
    shot(page, "2-launch-backfill")
    dialog.get_by_role("button", name="Launch backfill").click()
    page.get_by_text("Created backfill").wait_for()
    shot(page, "2b-backfill-created")
    page.get_by_role("link", name="View", exact=True).click()
    page.get_by_text("Partition selection").wait_for()

    def backfill_done() -> bool:
        page.reload()
        page.get_by_text("Partition selection").wait_for()
        status = page.get_by_text("Failed", exact=True).count() + page.get_by_text(
            "Completed", exact=True).count()
        return status > 0 and page.get_by_text("In progress", exact=True).count() <= 1

    wait_for(backfill_done, timeout=300, what="the backfill's runs to finish")
    shot(page, "3-backfill-finished")
    text = page.inner_text("body")
    # targeted, in progress, succeeded, failed
    assert backfill_figures(text, "voice_cdrs") == [3, 0, 2, 1]
    assert backfill_figures(text, "voice_reconciliation") == [3, 0, 2, 1]
    assert backfill_figures(text, "voice_kpis") == [3, 0, 2, 1]

    page.goto("/assets/voice_cdrs?view=partitions")
    page.get_by_text("Failed (1)").wait_for()
    page.get_by_text("Materialized (2)").wait_for()
    page.get_by_text(BROKEN_DAY.isoformat(), exact=True).first.click()
    page.get_by_text("failed, and did not materialize this asset").wait_for()
    shot(page, "4-failed-day")
    page.get_by_role("button", name="View logs").click()
    page.get_by_text(f"voice_app_app_{BROKEN_DAY}.csv: cannot decompress").first.wait_for()
    shot(page, "5-failure-reason")

    page.goto("/assets/voice_reconciliation?view=partitions")
    page.get_by_text(DAYS[-1].isoformat(), exact=True).first.click()
    page.get_by_text("rows_rejected").wait_for()
    page.get_by_text("[Show Markdown]").first.click()
    report = page.get_by_role("dialog")
    report.get_by_text(f"Voice CDRs, {DAYS[-1]}").wait_for()
    report.get_by_text("Amounts (file vs warehouse, exact)").wait_for()
    shot(page, "6-reconciliation-report")

    # the day's checks, each with a description; the daily HTML report, as a browser opens it
    page.goto("/assets/voice_cdrs?view=checks")
    page.get_by_text("key_columns_present").first.wait_for()
    page.get_by_text("amounts_match_file").first.wait_for()
    shot(page, "7-checks")
    html = sorted((ui_root / "reports" / "voice").glob("*.html"))[-1]
    page.goto(html.as_uri())
    page.get_by_text("Cost per day, by currency").first.wait_for()
    shot(page, "8-daily-html-report")

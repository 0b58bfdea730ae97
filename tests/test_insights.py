"""Reconciliation that finds money: planted cases are found, exactly what was planted."""

from __future__ import annotations

import datetime as dt
import random
import re
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from helpers import PT_HEADER, line, load_definitions, pt_row

from cdr_workflow.defs.common import kind_asset_keys
from cdr_workflow.demo import write_day
from cdr_workflow.kinds import VERIFICATION, VOICE
from cdr_workflow.kpis import day_kpi_rows, kpis
from cdr_workflow.load import load_day
from cdr_workflow.matching import Tolerances, match_records
from cdr_workflow.settings import Settings
from cdr_workflow.signals import by_destination, signals
from cdr_workflow.sources import DEFAULT_FILE_PATTERN
from cdr_workflow.sources.local import LocalSource

D20, D21 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@pytest.fixture
def warehouse_url(tmp_path) -> str:  # the logic here is engine-free: DuckDB is enough
    return f"duckdb:///{tmp_path}/warehouse.duckdb"


def write_voice(drop, day: dt.date, rows: list[dict[str, str]]) -> None:
    drop.mkdir(parents=True, exist_ok=True)
    (drop / f"voice_{day}.csv").write_text(PT_HEADER + "\n" + "".join(
        line(r) + "\n" for r in rows))


def at(day: dt.date, hour: int, minute: int = 0) -> str:
    return f"{day}T{hour:02d}:{minute:02d}:00Z"


def test_kpis_equal_hand_computed_values(tmp_path, warehouse):
    drop = tmp_path / "drop"
    write_voice(drop, D21, [
        pt_row("c1", Duration="60", Amount="0.10"),
        pt_row("c2", Duration="120", Amount="0.20"),
        pt_row("c3", Result="BUSY", Duration="0", Amount="0", AnswerTime=""),
        pt_row("c4", Result="FAILED", Duration="0", Amount="0", AnswerTime="", ToCountryId="DE"),
    ])
    load_day(LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN)), warehouse, VOICE, D21, "r")
    results = day_kpi_rows(warehouse, VOICE, D21)
    overall = {k.measure: k.figure for k in kpis(VOICE, results) if k.dimension == "all"}
    assert overall == {
        "attempts": 4, "answered": 2, "asr": Decimal("0.5"), "ner": Decimal("0.75"),
        "acd_seconds": Decimal("90"), "minutes": Decimal("3"), "cost_EUR": Decimal("0.3"),
        "cost_per_minute_EUR": Decimal("0.1")}
    germany = {k.measure: k.figure for k in kpis(VOICE, results)
               if k.dimension == "country" and k.value == "DE"}
    assert germany["attempts"] == 1 and germany["asr"] == 0


def test_expected_records_find_exactly_what_was_planted():
    day = D20
    cdr_time = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
    expected = [  # id, expected time, expected amount, CDR day, CDR time, CDR amount
        ("ok", cdr_time, Decimal("0.1"), day, cdr_time, Decimal("0.1")),
        ("missing", cdr_time, Decimal("0.1"), None, None, None),
        ("pricey", cdr_time, Decimal("0.1000"), day, cdr_time, Decimal("0.1001")),
        ("skewed", cdr_time, None, day, cdr_time + dt.timedelta(hours=3), None),
        ("late", cdr_time, None, day + dt.timedelta(days=1), cdr_time, None),
    ]
    unexpected = [("surprise", "voice_2026-11-20.csv", 7)]
    found = {m.id: m.status for m in match_records(day, expected, unexpected, Tolerances(
        amount=Decimal(0), seconds=300))}
    assert found == {"ok": "matched", "missing": "missing_in_cdrs",
                     "pricey": "amount_mismatch", "skewed": "time_skew",
                     "late": "matched_late", "surprise": "unexpected_in_cdrs"}
    tolerant = {m.id: m.status for m in match_records(day, expected, [], Tolerances(
        amount=Decimal("0.001"), seconds=4 * 3600))}
    assert tolerant["pricey"] == tolerant["skewed"] == "matched"


def test_a_late_cdr_turns_missing_into_matched_late_when_the_next_day_loads(tmp_path, env):
    env = {**env, "CDR_EXPECTED_DIR": str(tmp_path / "expected")}
    settings = Settings.from_env(env)
    drop, expected = settings.drop_dir, settings.expected_dir
    expected.mkdir()
    (expected / "expected_voice_2026-11-20.csv").write_text(
        f"id;timestamp;amount;currency\nontime;{at(D20, 10)};0.0125;EUR\n"
        f"late;{at(D20, 23, 50)};0.0125;EUR\n")
    write_voice(drop, D20, [pt_row("ontime", CallTime=at(D20, 10), AnswerTime="")])
    defs = load_definitions(env)
    job = defs.resolve_job_def("cdr_day_job")
    follow_up = defs.resolve_sensor_def("cdr_follow_up")
    voice = kind_asset_keys(VOICE)
    warehouse = defs.resources["cdr"].warehouse

    def statuses() -> dict[str, str]:
        return dict(warehouse.query("SELECT id, status FROM cdr_expected_match "
                                    "WHERE cdr_date = ?", (D20,)))

    def follow(instance, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
        """One sensor tick, then the runs it asked for, as the daemon would launch them."""
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                          resources={"cdr": defs.resources["cdr"]})
        result = follow_up.evaluate_tick(context)
        for request in result.run_requests:
            run = defs.resolve_job_def(request.job_name).execute_in_process(
                instance=instance, tags=request.tags, partition_key=request.partition_key)
            assert run.success
        return result.run_requests, result.cursor

    with dg.instance_for_test() as instance:
        assert job.execute_in_process(partition_key=str(D20), instance=instance,
                                      asset_selection=voice).success
        requests, cursor = follow(instance, None)
        # the day itself and the days before it whose late CDRs its file may bring, as one
        # ranged run; and the day's billing month
        assert [(r.job_name, r.tags.get(RANGE_START), r.tags.get(RANGE_END), r.partition_key)
                for r in requests] == [
            ("cdr_match_job", str(D20 - dt.timedelta(days=3)), str(D20), None),
            ("cdr_billing_job", None, None, "2026-11-01")]
        assert statuses() == {"ontime": "matched", "late": "missing_in_cdrs"}
        assert follow(instance, cursor)[0] == []  # nothing new, nothing asked

        write_voice(drop, D21, [pt_row("late", CallTime=at(D20, 23, 50), AnswerTime="")])
        assert job.execute_in_process(partition_key=str(D21), instance=instance,
                                      asset_selection=voice).success
        requests, cursor = follow(instance, cursor)
        assert requests[0].tags[RANGE_START] <= str(D20) <= requests[0].tags[RANGE_END]
        assert statuses() == {"ontime": "matched", "late": "matched_late"}

        # own records replaced: the day is matched again without any load
        (expected / "expected_voice_2026-11-20.csv").write_text(
            f"id;timestamp;amount;currency\nontime;{at(D20, 10)};0.0125;EUR\n")
        requests, cursor = follow(instance, cursor)
        assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [
            (str(D20), str(D20))]
    assert statuses() == {"ontime": "matched"}


@pytest.mark.slow  # three days through the day job and a month: left out of `make test-fast`
def test_the_monthly_summary_equals_the_sum_of_its_days(tmp_path, env):
    settings = Settings.from_env(env)
    for day in (D20 - dt.timedelta(days=1), D20, D21):
        write_day(settings.drop_dir, day, rows_per_file=60)
    defs = load_definitions(env)
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("cdr_day_job")
        for day in (D20 - dt.timedelta(days=1), D20, D21):
            assert job.execute_in_process(partition_key=str(day), instance=instance).success
        billing = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, partition_key="2026-11-01",
            asset_selection=[dg.AssetKey("cdr_billing_monthly")])
        assert billing.success
    warehouse = defs.resources["cdr"].warehouse
    def exact(value: object) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    invoice = {(k, c, a, p): (int(n), exact(v)) for k, c, a, p, n, v in warehouse.query(
        "SELECT kind, currency, application_key, product, items, amount "
        "FROM cdr_billing_monthly")}
    days = {}  # the same lines summed straight from the daily tables, day by day
    for kind, product in (("verification", "method"), ("voice", "call_type")):
        for c, a, p, _day, n, v in warehouse.query(
                f"SELECT currency, application_key, {product}, cdr_date, COUNT(*), SUM(amount) "
                f"FROM {kind}_cdrs GROUP BY ALL"):
            items, amount = days.get((kind, c, a, p), (0, None))
            days[(kind, c, a, p)] = (items + int(n), amount if v is None else
                                     (amount or Decimal(0)) + exact(v))
    assert invoice == days
    assert sum(v for _, v in invoice.values() if v is not None) > 0
    html = (settings.reports_dir / "billing" / "2026-11.html").read_text()
    assert "Invoice lines, 2026-11" in html
    assert not re.search(r"(src|href)=[\"']https?:|<script", html), "nothing to fetch"
    assert html.count("<svg") == 4  # items and amount per day, for each kind


def week(day: dt.date, volumes: dict[str, tuple[int, int]], noise: int = 0) -> list[tuple]:
    rng = random.Random(day.toordinal())
    return [(day, country, volume + rng.randint(-noise, noise), successes)
            for country, (volume, successes) in volumes.items()]


def test_planted_pumping_is_flagged_and_an_ordinary_week_is_not():
    normal = {"SE": (100, 80), "NG": (100, 80), "DE": (60, 50)}
    history = [row for i in range(1, 8) for row in week(D21 - dt.timedelta(days=i), normal, 5)]
    loaded = {D21 - dt.timedelta(days=i) for i in range(8)}
    ordinary = signals(VERIFICATION, "country", D21, history + week(D21, normal, 5), loaded)
    assert [s.flag for s in ordinary] == [None, None, None]
    pumped = week(D21, {**normal, "NG": (1000, 50)})  # 10x volume at 5% conversion
    flagged = [s for s in signals(VERIFICATION, "country", D21, history + pumped, loaded)
               if s.flag]
    assert [(s.value, s.flag) for s in flagged] == [("NG", "pumping")]


def test_the_daily_report_has_labelled_charts_from_zero_and_a_kpi_grid(tmp_path, env):
    settings = Settings.from_env(env)
    write_day(settings.drop_dir, D21, rows_per_file=30)
    defs = load_definitions(env)
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("cdr_day_job").execute_in_process(
            partition_key=str(D21), instance=instance).success
        event = instance.get_latest_materialization_event(dg.AssetKey("voice_kpis"))
    metadata = event.asset_materialization.metadata
    html = Path(metadata["html_report_file"].value).read_text(encoding="utf-8")
    assert "Voice CDRs, 2026-11-21" in html
    assert not re.search(r"(src|href)=[\"']https?:|<script", html), "nothing to fetch"
    assert html.count("<svg") == 5  # volume, cost per currency, ASR, reject ratio, flags
    # one line per currency, never a sum of EUR and USD
    cost = html[html.index("Cost per day, by currency"):]
    cost = cost[:cost.index("</svg>")]
    assert "EUR" in cost and "USD" in cost and "all currencies" not in html
    # the KPI grid: a row per dimension value, a column per measure (here and in the UI)
    grid = metadata["kpis"].value.splitlines()
    headers = [h.strip() for h in grid[0].strip("|").split("|")]
    assert headers[:4] == ["dimension", "value", "attempts", "answered"] and "asr" in headers
    assert len(grid) - 2 == len({(r.split("|")[1], r.split("|")[2]) for r in grid[2:]})


def test_calls_spiking_to_premium_rate_numbers_are_flagged_by_the_numbering_plan():
    """Destinations by libphonenumber: +44 7… is a UK mobile, +44 90… UK premium rate."""
    def day_rows(day: dt.date, mobile: int, premium: int) -> list[tuple]:
        rows = [(day, "+447911", "+447911123456", mobile, int(mobile * 0.8))]
        if premium:
            rows.append((day, "+449090", "+449090123456", premium, premium))  # all answered
        return rows

    history = [r for i in range(1, 8) for r in day_rows(D21 - dt.timedelta(days=i), 100, 2)]
    loaded = {D21 - dt.timedelta(days=i) for i in range(8)}
    quiet = by_destination(history + day_rows(D21, 100, 2), "number_type")["number_type"]
    assert [s.flag for s in signals(VOICE, "destination_type", D21, quiet, loaded)] == [
        None, None]
    pumped = by_destination(history + day_rows(D21, 100, 150), "number_type")["number_type"]
    flagged = {s.value: s.flag for s in signals(VOICE, "destination_type", D21, pumped, loaded)}
    assert flagged == {"mobile": None, "premium_rate": "irsf_suspect"}
    countries = {d: v for d, v, *_ in by_destination(day_rows(D21, 1, 1), "region")["region"]}
    assert countries == {D21: "GB"}

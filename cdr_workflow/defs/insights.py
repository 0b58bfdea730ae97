"""Assets beyond the daily load: the customer's records matched against the CDRs, KPIs and
fraud signals per day, and the monthly invoice lines."""

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa

from cdr_workflow.defs.common import OWNERS, expected_key, materialize_days, table_key
from cdr_workflow.defs.partitions import WAREHOUSE_POOL
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.html_report import daily_html, monthly_html
from cdr_workflow.insights import (
    KPI_DIMENSIONS,
    SIGNAL_DIMENSIONS,
    STATUSES,
    TRAILING_DAYS,
    Kpi,
    as_date,
    billing_query,
    classify,
    expected_query,
    kpi_queries,
    kpis,
    month_bounds,
    signal_query,
    signals,
    unexpected_query,
    volume_anomaly,
)
from cdr_workflow.layouts import KINDS, table_name
from cdr_workflow.reader import read_expected_file
from cdr_workflow.reconcile import CheckOutcome

LATE_DAYS = 3  # a CDR may land in a file up to this many days after its own day
REPORT_DAYS = 30
# Re-evaluate a day whenever any of its days' CDRs load (its own, or a later day's file that
# brings a late record): earlier days' matches come up to date on their own.
AFTER_LOADS = (dg.AutomationCondition.any_deps_updated()
               & ~dg.AutomationCondition.in_progress()
               & ~dg.AutomationCondition.any_deps_in_progress()
               ).with_label("after any of its days loads")


def build_expected_match(kind: str, partitions: dg.DailyPartitionsDefinition
                         ) -> dg.AssetsDefinition:
    @dg.asset(
        key=expected_key(kind), group_name=kind, partitions_def=partitions,
        deps=[dg.AssetDep(table_key(kind), partition_mapping=dg.TimeWindowPartitionMapping(
            end_offset=LATE_DAYS, allow_nonexistent_upstream_partitions=True))],
        automation_condition=AFTER_LOADS, backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL, kinds={"table"}, owners=OWNERS, tags={"cdr_kind": kind},
        description=f"Your own records of {kind} requests (`expected_{kind}_YYYY-MM-DD.csv` in "
        "the expected folder or prefix) matched with the CDRs: matched, matched late, amount "
        "mismatch, time skew, missing in CDRs, unexpected in CDRs. Table "
        "`cdr_expected_match`. Re-evaluated when a later day's file brings a late CDR.")
    def expected_match(context: dg.AssetExecutionContext, cdr: dg.ResourceParam[CdrWorkflow]):
        listing = cdr.expected_source.list()

        def match(day: dt.date) -> Iterator[tuple[dg.AssetKey, dict[str, Any]]]:
            files = listing.find(kind, day)
            if not files:  # an optional input: nothing to match is not a failure
                yield context.asset_key, {"expected_files": 0}
                return
            yield context.asset_key, _matchas_date(cdr, kind, day, files, context)

        materialize_days(context, match)

    return expected_match


def _matchas_date(cdr: CdrWorkflow, kind: str, day: dt.date, files: list,
               context: dg.AssetExecutionContext) -> dict[str, Any]:
    tables = []
    for f in files:
        with cdr.expected_source.open(f) as stream:
            records = read_expected_file(stream, f.relative_path)
        n = records.num_rows
        tables.append(pa.table({
            "kind": pa.repeat(pa.scalar(kind), n),
            "cdr_date": pa.repeat(pa.scalar(day, pa.date32()), n),
            "id": records.column("id"), "expected_time": records.column("expected_time"),
            "amount": records.column("amount"), "currency": records.column("currency"),
            "source_file": pa.repeat(pa.scalar(f.relative_path), n)}))
    warehouse = cdr.warehouse
    warehouse.replace_rows("cdr_expected", {"kind": kind, "cdr_date": day},
                           pa.concat_tables(tables))
    matches = classify(day, warehouse.query(expected_query(kind), (kind, day)),
                       warehouse.query(unexpected_query(kind), (day, kind)),
                       cdr.settings.tolerances)
    now = dt.datetime.now(dt.UTC)
    warehouse.replace_rows("cdr_expected_match", {"kind": kind, "cdr_date": day}, pa.table({
        "kind": pa.array([kind] * len(matches)),
        "cdr_date": pa.array([day] * len(matches), pa.date32()),
        "id": [m.id for m in matches], "status": [m.status for m in matches],
        "detail": [m.detail for m in matches],
        "cdr_loaded_date": pa.array([m.cdr_date for m in matches], pa.date32()),
        "computed_at": pa.array([now] * len(matches), pa.timestamp("us", tz="UTC"))}))
    counts = {status: sum(m.status == status for m in matches) for status in STATUSES}
    problems = [m for m in matches if m.status not in ("matched", "matched_late")]
    context.log.info(f"{kind} {day}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return {**counts, "expected_files": len(files), "findings": dg.MetadataValue.md(
        "| id | status | detail |\n|---|---|---|\n" + "\n".join(
            f"| {m.id} | {m.status} | {m.detail} |" for m in problems[:50]) or "none")}


KPI_DESCRIPTION = {kind: (
    f"Daily {kind} KPIs by " + ", ".join(n for n, _ in KPI_DIMENSIONS[kind][1:])
    + (": attempts, ASR, ACD, NER, minutes, cost and cost per minute" if kind == "voice"
       else ": requests, conversion, cost per successful verification")
    + " (table `cdr_kpis_daily`), and a self-contained HTML report with 30-day charts.")
    for kind in KINDS}
SIGNAL_DESCRIPTION = {kind: (
    "Fraud and anomaly signals per country" + (" and destination prefix" if kind == "voice"
                                               else "")
    + f": volume against its trailing {TRAILING_DAYS}-day median and success rate against "
    "its norm, flagging " + ("SMS / flash-call pumping" if kind == "verification"
                             else "IRSF-like traffic") + " (table `cdr_signals_daily`).")
    for kind in KINDS}


def day_insights(cdr: CdrWorkflow, kind: str, day: dt.date
                 ) -> tuple[dict[str, Any], dict[str, Any], list[CheckOutcome]]:
    """KPIs, signals and the HTML report of one day: (KPI metadata, signal metadata, checks)."""
    kpi_rows, overall = _kpis(cdr, kind, day)
    signal_rows, flagged, (steady, anomaly) = _signals(cdr, kind, day)
    path = cdr.settings.reports_dir / kind / f"{day.isoformat()}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(daily_html(kind, day, _series(cdr, kind, day), kpi_rows, signal_rows),
                    encoding="utf-8")
    listed = ", ".join(f"{s.dimension} {s.value}: {s.flag}" for s in flagged) or "none"
    checks = [
        CheckOutcome("volume_anomaly", steady,
                     "The day's volume is within ±50% of its trailing 7-day median", anomaly),
        CheckOutcome("no_fraud_flags", not flagged,
                     "No country or destination prefix is flagged", listed),
    ]
    kpi_metadata = {**overall, "html_report": dg.MetadataValue.path(str(path.resolve()))}
    signal_metadata = {"flags": len(flagged), "volume_anomaly": anomaly,
                       "flagged": dg.MetadataValue.md("\n".join(
                           f"- **{s.value}** ({s.dimension}): {s.flag}, volume {s.volume} vs "
                           f"median {s.trailing_median:g}, success {s.success_rate:.0%}"
                           for s in flagged) or "none")}
    return kpi_metadata, signal_metadata, checks


def _kpis(cdr: CdrWorkflow, kind: str, day: dt.date) -> tuple[list[Kpi], dict[str, Any]]:
    results = {name: cdr.warehouse.query(sql, (day,)) for name, sql in kpi_queries(kind).items()}
    rows = kpis(kind, results)
    cdr.warehouse.replace_rows("cdr_kpis_daily", {"kind": kind, "cdr_date": day}, pa.table({
        "kind": pa.array([kind] * len(rows)),
        "cdr_date": pa.array([day] * len(rows), pa.date32()),
        "dimension": [k.dimension for k in rows], "dimension_value": [k.value for k in rows],
        "measure": [k.measure for k in rows],
        "value": pa.array([k.figure for k in rows], pa.decimal128(38, 6))}))
    overall = {k.measure: float(k.figure) for k in rows if k.dimension == "all"}
    return rows, overall


def _loaded_days(cdr: CdrWorkflow, kind: str, first: dt.date, last: dt.date) -> set[dt.date]:
    return {as_date(d) for (d,) in cdr.warehouse.query(
        "SELECT DISTINCT cdr_date FROM cdr_files WHERE kind = ? AND cdr_date BETWEEN ? AND ?",
        (kind, first, last))}


def _signals(cdr: CdrWorkflow, kind: str, day: dt.date):
    first = day - dt.timedelta(days=TRAILING_DAYS)
    loaded = _loaded_days(cdr, kind, first, day)
    found = []
    for dimension, expr in SIGNAL_DIMENSIONS[kind]:
        rows = cdr.warehouse.query(signal_query(kind, expr), (first, day))
        found += signals(kind, dimension, day, rows, loaded)
    cdr.warehouse.replace_rows("cdr_signals_daily", {"kind": kind, "cdr_date": day}, pa.table({
        "kind": pa.array([kind] * len(found)),
        "cdr_date": pa.array([day] * len(found), pa.date32()),
        "dimension": [s.dimension for s in found], "dimension_value": [s.value for s in found],
        "volume": pa.array([s.volume for s in found], pa.int64()),
        "trailing_median": pa.array([s.trailing_median for s in found], pa.float64()),
        "success_rate": pa.array([s.success_rate for s in found], pa.float64()),
        "norm_success_rate": pa.array([s.norm_success_rate for s in found], pa.float64()),
        "flag": pa.array([s.flag for s in found], pa.string())}))
    totals = {as_date(d): int(n) for d, n in cdr.warehouse.query(
        f"SELECT cdr_date, COUNT(*) FROM {table_name(kind)} WHERE cdr_date BETWEEN ? AND ? "
        "GROUP BY 1", (first, day))}
    totals = {d: totals.get(d, 0) for d in loaded | {day}}  # a loaded day with no rows is 0
    return found, [s for s in found if s.flag], volume_anomaly(day, totals)



def _series(cdr: CdrWorkflow, kind: str, day: dt.date) -> dict[str, list]:
    """Daily figures over the last 30 days, for the report's charts."""
    first = day - dt.timedelta(days=REPORT_DAYS - 1)
    success = "ANSWERED" if kind == "voice" else "SUCCESSFUL"
    rows = cdr.warehouse.query(
        f"SELECT t.cdr_date, COUNT(*), SUM(t.amount), "
        f"SUM(CASE WHEN t.result = '{success}' THEN 1 ELSE 0 END) FROM {table_name(kind)} t "
        "WHERE t.cdr_date BETWEEN ? AND ? GROUP BY 1 ORDER BY 1", (first, day))
    files = dict(cdr.warehouse.query(
        "SELECT cdr_date, SUM(rows_rejected) * 1.0 / NULLIF(SUM(rows_read), 0) FROM cdr_files "
        "WHERE kind = ? AND cdr_date BETWEEN ? AND ? GROUP BY 1", (kind, first, day)))
    flags = dict(cdr.warehouse.query(
        "SELECT cdr_date, COUNT(flag) FROM cdr_signals_daily WHERE kind = ? AND cdr_date "
        "BETWEEN ? AND ? GROUP BY 1", (kind, first, day)))

    rate = "ASR" if kind == "voice" else "conversion"
    return {
        "volume": [(as_date(d), float(n)) for d, n, _, _ in rows],
        "cost (all currencies)": [(as_date(d), float(Decimal(str(c or 0)))) for d, _, c, _ in rows],
        "reject ratio": [(as_date(d), float(r or 0)) for d, r in sorted(files.items())],
        rate: [(as_date(d), s / n if n else 0.0) for d, n, _, s in rows],
        "flags": [(as_date(d), float(n)) for d, n in sorted(flags.items())],
    }


def _month_series(cdr: CdrWorkflow, first: dt.date, last: dt.date) -> dict[str, list]:
    """Per kind, the daily items and amount (all currencies) of the month, for its charts."""
    series: dict[str, list] = {}
    for kind in KINDS:
        rows = cdr.warehouse.query(f"SELECT cdr_date, COUNT(*), SUM(amount) FROM "
                                   f"{table_name(kind)} WHERE cdr_date BETWEEN ? AND ? "
                                   "GROUP BY 1 ORDER BY 1", (first, last))
        series[f"{kind} items"] = [(as_date(d), float(n)) for d, n, _ in rows]
        series[f"{kind} amount"] = [(as_date(d), float(Decimal(str(a or 0)))) for d, _, a in rows]
    return series


def build_billing(start_date: dt.date) -> dg.AssetsDefinition:
    monthly = dg.MonthlyPartitionsDefinition(start_date=start_date.replace(day=1).isoformat(),
                                             timezone="UTC", end_offset=1)

    @dg.asset(
        key="cdr_billing_monthly", group_name="billing", partitions_def=monthly,
        deps=[table_key(kind) for kind in KINDS], pool=WAREHOUSE_POOL,
        kinds={"table", "html"}, owners=OWNERS,
        automation_condition=AFTER_LOADS,
        description="Invoice lines per month: items and exact amount per currency × "
        "application key × verification method or voice call type, summed from the daily "
        "tables (month to date while the month is open). Table `cdr_billing_monthly` and a "
        "self-contained HTML page.")
    def billing(context: dg.AssetExecutionContext, cdr: dg.ResourceParam[CdrWorkflow]):
        month = dt.date.fromisoformat(context.partition_key)
        first, last = month_bounds(month)
        month_to_date = last >= dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        lines = [(kind, *row) for kind in KINDS
                 for row in cdr.warehouse.query(billing_query(kind), (first, last))]
        now = dt.datetime.now(dt.UTC)
        cdr.warehouse.replace_rows("cdr_billing_monthly", {"month": first}, pa.table({
            "month": pa.array([first] * len(lines), pa.date32()),
            "kind": [line[0] for line in lines], "currency": [line[1] for line in lines],
            "application_key": [line[2] for line in lines],
            "product": [line[3] for line in lines],
            "items": pa.array([int(line[4]) for line in lines], pa.int64()),
            "amount": pa.array([None if line[5] is None else Decimal(str(line[5]))
                                for line in lines], pa.decimal128(38, 6)),
            "month_to_date": pa.array([month_to_date] * len(lines)),
            "computed_at": pa.array([now] * len(lines), pa.timestamp("us", tz="UTC"))}))
        path = cdr.settings.reports_dir / "billing" / f"{first:%Y-%m}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(monthly_html(first, month_to_date, lines, _month_series(cdr, first, last)),
                        encoding="utf-8")
        totals: dict[str, Decimal] = {}
        for line in lines:
            totals[line[1] or "none"] = totals.get(line[1] or "none", Decimal(0)) + Decimal(
                str(line[5] or 0))
        return dg.MaterializeResult(metadata={
            "lines": len(lines), "month_to_date": month_to_date,
            "html_report": dg.MetadataValue.path(str(path.resolve())),
            **{f"amount_{c}": float(v) for c, v in totals.items()},
            "invoice": dg.MetadataValue.md("| kind | currency | key | product | items | amount |"
                                           "\n|---|---|---|---|---:|---:|\n" + "\n".join(
                                               "| " + " | ".join(str(c) for c in line) + " |"
                                               for line in lines))})

    return billing

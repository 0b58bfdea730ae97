"""Per kind, the daily assets: the day's files → the loaded table → its reconciliation, KPIs
and fraud signals, with the day's checks.

One step per kind does them day by day: find the files, load them (one transaction), reconcile,
compute KPIs and signals. Each day is recorded as its own partition materialization and its own
check results, so in a backfill run one bad day fails alone while the others load normally.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from cdr_workflow.alerts import check_failed, day_failed, fraud_flagged
from cdr_workflow.checks import RULES, SIGNAL_RULES, TABLE_RULES, CheckOutcome, CheckRule
from cdr_workflow.day_facts import read_day_facts, store_report
from cdr_workflow.defs.common import (
    OWNERS,
    WAREHOUSE_POOL,
    backfill_policy,
    column_schema,
    daily_partitions,
    file_key,
    kpi_key,
    materialize_days,
    raise_for,
    report_key,
    signal_key,
    table_key,
)
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.kinds import KINDS, Kind
from cdr_workflow.kpis import compute_day_kpis
from cdr_workflow.load import find_day_files, load_day
from cdr_workflow.reconcile import DailyReport
from cdr_workflow.reports.html import daily_charts, daily_html, kpi_markdown
from cdr_workflow.settings import Settings
from cdr_workflow.signals import DaySignals, Signal, compute_day_signals, signal_checks
from cdr_workflow.sources import Listing, NoFileError
from cdr_workflow.warehouse.base import MB
from cdr_workflow.warehouse.tables import table_of

DayChecks = list[tuple[dg.AssetKey, CheckOutcome]]
# Sinch delivers yesterday by the early morning; the 06:00 schedule loads what the sensor has
# not. A table not loaded between midnight and 09:00 UTC shows as overdue in the UI.
# Drawing a day's HTML charts takes ~0.5 s: a run draws its last week (a year's backfill
# would spend minutes on pages of days nobody looks at); the KPI grid is in every day's metadata.
HTML_REPORT_DAYS = dt.timedelta(days=7)
DAILY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 9 * * *",
                                          lower_bound_delta=dt.timedelta(hours=9))


def _specs(kind: Kind) -> list[dg.AssetSpec]:
    common: dict[str, Any] = {"group_name": kind.name, "owners": OWNERS, "skippable": True,
                              "tags": {"cdr_kind": kind.name}}
    return [
        dg.AssetSpec(
            file_key(kind), kinds={"csv"}, **common,
            description=f"The day's Sinch {kind.name} CDR file(s) in the drop folder or S3 "
            "bucket, found by the file-name pattern, with sizes and fingerprints. A day with no "
            "file fails, naming where it looked."),
        dg.AssetSpec(
            table_key(kind), deps=[file_key(kind)], kinds={"table", "pandera"}, **common,
            freshness_policy=DAILY_FRESHNESS,
            metadata={"dagster/column_schema": column_schema(table_of(kind)),
                      "dagster/table_name": kind.table},
            description=f"Warehouse table `{kind.table}`: one row per {kind.name} CDR that "
            "passed the pandera schema of its Sinch layout. Bad lines go to `cdr_rejects` with "
            "file, line and reasons; `cdr_files` records each file. Re-running a day replaces "
            "exactly that day, in one transaction."),
        dg.AssetSpec(
            report_key(kind), deps=[table_key(kind)], kinds={"markdown"}, **common,
            description=f"Daily reconciliation of {kind.name} CDRs: lines read vs loaded vs "
            "rejected (by reason), exact amount totals per currency and application key (file "
            "vs warehouse), result/reason mix, ids already loaded on other days, late records "
            "and missing earlier days. Stored in `cdr_reconciliation_daily` and written as "
            "markdown under the reports folder."),
        dg.AssetSpec(kpi_key(kind), deps=[table_key(kind)], kinds={"table", "html"}, **common,
                     description=kind.kpi_description),
        dg.AssetSpec(signal_key(kind), deps=[table_key(kind)], kinds={"table"}, **common,
                     description=kind.signal_description),
    ]


def _check_specs(kind: Kind, partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    def spec(rule: CheckRule, asset: dg.AssetKey) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(rule.name, asset=asset, description=rule.description,
                                 partitions_def=partitions)

    return ([spec(rule, table_key(kind)) for rule in TABLE_RULES]
            + [spec(rule, signal_key(kind)) for rule in SIGNAL_RULES])


def build_kind_pipeline(kind: Kind, settings: Settings) -> dg.AssetsDefinition:
    partitions = daily_partitions(settings)

    @dg.multi_asset(
        name=f"{kind.name}_pipeline",
        specs=_specs(kind),
        check_specs=_check_specs(kind, partitions),
        partitions_def=partitions,
        backfill_policy=backfill_policy(settings),
        pool=WAREHOUSE_POOL,
        can_subset=True,
    )
    def pipeline(context: dg.AssetExecutionContext, cdr: dg.ResourceParam[CdrWorkflow]
                 ) -> Iterator[dg.Output]:
        keys = context.partition_keys
        context.log.info(f"{kind.name}: {len(keys)} day(s), {keys[0]} to {keys[-1]}")
        listing = cdr.source.list()  # once per run, not once per day
        with cdr.warehouse.session():  # one connection for all the run's days
            failures = materialize_days(context, lambda day: _run_day(
                context, cdr, listing, kind, day))
        for day, error in sorted(failures.items()):
            cdr.notifier.send(day_failed(kind.name, day, str(error),
                                         files_missing=isinstance(error, NoFileError)))
        raise_for(failures, kind.name, len(context.partition_keys))
        yield from ()  # each day was logged as its own materializations and check results

    return pipeline


def _run_day(context: dg.AssetExecutionContext, cdr: CdrWorkflow, listing: Listing,
             kind: Kind, day: dt.date) -> Iterator[tuple[dg.AssetKey, dict[str, Any]]]:
    """Materialise the selected assets of one day, yielding (asset, metadata) as each is
    committed, then record the day's check results."""
    selected = context.selected_asset_keys
    files = find_day_files(cdr.source, kind, day, listing)
    if file_key(kind) in selected:
        yield file_key(kind), {
            "files": dg.MetadataValue.md("\n".join(
                f"- `{f.relative_path}`: {f.size_bytes:,} bytes, fingerprint `{f.fingerprint}`"
                for f in files)),
            "file_count": len(files),
            "size_bytes": sum(f.size_bytes for f in files),
        }
    result = None
    if table_key(kind) in selected:
        result = load_day(cdr.source, cdr.warehouse, kind, day, context.run_id, listing,
                          cdr.settings.pseudonymisation_key)
        yield table_key(kind), {
            "dagster/row_count": result.rows_loaded,
            "rows_read": result.rows_read,
            "rows_loaded": result.rows_loaded,
            "rows_rejected": result.rows_rejected,
            "files": len(result.files),
            "warehouse": cdr.warehouse.display_url,
            **_id_index_metadata(context, cdr, kind),
        }
    derived = _Derived()
    if result is not None or {report_key(kind), kpi_key(kind), signal_key(kind)} & selected:
        with cdr.warehouse.transaction():  # what the day derives: one commit, recorded after
            derived = _derive(context, cdr, kind, day, with_table_checks=result is not None)
    for path, text in derived.pages.items():  # the report files, once their rows are in
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if result is not None:
        failed = [c.name for _, c in derived.checks if not c.passed]
        context.log.info(f"{kind.name} {day}: {result.rows_loaded:,} of {result.rows_read:,} "
                         f"lines loaded, {result.rows_rejected:,} rejected, from "
                         f"{len(result.files)} file(s)" + (
                             f"; failing checks: {', '.join(failed)}" if failed else ""))
    yield from derived.outputs
    _log_checks(context, day, derived.checks)
    if derived.flagged:
        cdr.notifier.send(fraud_flagged(kind.name, day, derived.flagged))
    for _, outcome in derived.checks:
        if not outcome.passed and not RULES[outcome.name].warn_only:
            cdr.notifier.send(check_failed(kind.name, day, outcome.name, outcome.detail))


def _id_index_metadata(context: dg.AssetExecutionContext, cdr: CdrWorkflow, kind: Kind
                       ) -> dict[str, float]:
    """The id index's size beside its cache (plotted across days), and a warning on each
    load once the index has outgrown it. Only a diagnostic: the day has committed, so a
    failure to read it is logged, never the day's failure."""
    try:
        fit = cdr.warehouse.id_index_fit(table_of(kind).name, kind.id_column)
    except Exception as exc:  # noqa: BLE001 - see above
        context.log.warning(f"{kind.name}: the id index's size could not be read: {exc}")
        return {}
    if fit is None:
        return {}
    if fit.outgrown:
        context.log.warning(f"{kind.name}: {fit.warning()}")
    return {"id_index_mb": round(fit.index_bytes / MB, 1),
            f"{fit.cache}_mb": round(fit.cache_bytes / MB, 1)}


@dataclass
class _Derived:
    """What a day's loaded table gives: assets' metadata, check results, fraud flags, and
    the report files to write."""

    outputs: list[tuple[dg.AssetKey, dict[str, Any]]] = field(default_factory=list)
    pages: dict[Path, str] = field(default_factory=dict)
    checks: DayChecks = field(default_factory=list)
    flagged: list[Signal] = field(default_factory=list)


def _derive(context: dg.AssetExecutionContext, cdr: CdrWorkflow, kind: Kind, day: dt.date,
            with_table_checks: bool) -> _Derived:
    """The day's selected report, KPIs and signals, and the table's checks if it was loaded;
    the reconciliation is read back from the warehouse once, for both."""
    selected, derived = context.selected_asset_keys, _Derived()
    report = None
    if with_table_checks or report_key(kind) in selected:
        report = DailyReport(read_day_facts(cdr.warehouse, kind, day, cdr.settings.start_date),
                             cdr.settings.max_reject_ratio)
    if with_table_checks:
        derived.checks += [(table_key(kind), outcome) for outcome in report.checks()]
    if report_key(kind) in selected:
        derived.outputs.append((report_key(kind), _store_report(cdr, report, derived.pages)))
    if {kpi_key(kind), signal_key(kind)} & selected:
        kpi_metadata, signal_metadata, day_signals = _insights(context, cdr, kind, day,
                                                                derived.pages)
        derived.checks += [(signal_key(kind), o) for o in signal_checks(day_signals)]
        derived.flagged = day_signals.flagged
        if kpi_key(kind) in selected:
            derived.outputs.append((kpi_key(kind), kpi_metadata))
        if signal_key(kind) in selected:
            derived.outputs.append((signal_key(kind), signal_metadata))
    return derived


def _store_report(cdr: CdrWorkflow, report: DailyReport, pages: dict[Path, str]
                  ) -> dict[str, Any]:
    markdown = report.markdown()
    path = cdr.settings.reports_dir / report.kind / f"{report.day.isoformat()}.md"
    pages[path] = markdown
    store_report(cdr.warehouse, report)
    return {"report": dg.MetadataValue.md(markdown),
            "report_file": str(path.resolve()), **report.numbers()}


def _insights(context: dg.AssetExecutionContext, cdr: CdrWorkflow, kind: Kind, day: dt.date,
              pages: dict[Path, str]) -> tuple[dict[str, Any], dict[str, Any], DaySignals]:
    """KPIs, signals and the HTML report of one day (added to `pages`): (KPI metadata, signal
    metadata, the signals)."""
    kpis = compute_day_kpis(cdr.warehouse, kind, day)
    day_signals = compute_day_signals(cdr.warehouse, kind, day)
    kpi_metadata: dict[str, Any] = {
        **{k.measure: float(k.figure) for k in kpis if k.dimension == "all"},
        "kpis": dg.MetadataValue.md(kpi_markdown(kpis))}
    if dt.date.fromisoformat(context.partition_keys[-1]) - day < HTML_REPORT_DAYS:
        path = cdr.settings.reports_dir / kind.name / f"{day.isoformat()}.html"
        pages[path] = daily_html(kind, day, daily_charts(cdr.warehouse, kind, day), kpis,
                                 day_signals.signals)
        kpi_metadata["html_report_file"] = str(path.resolve())
    signal_metadata = {"flags": len(day_signals.flagged),
                       "volume_anomaly": day_signals.volume_detail,
                       "flagged": dg.MetadataValue.md("\n".join(
                           f"- **{s.value}** ({s.dimension}): {s.flag}, volume {s.volume} vs "
                           f"median {s.trailing_median:g}, success {s.success_rate:.0%}"
                           for s in day_signals.flagged) or "none")}
    return kpi_metadata, signal_metadata, day_signals


def _log_checks(context: dg.AssetExecutionContext, day: dt.date, checks: DayChecks) -> None:
    """Each check's result for this day, as that day's partition of the check."""
    for asset_key, outcome in checks:
        rule = RULES[outcome.name]
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=asset_key, check_name=outcome.name, passed=outcome.passed,
            partition=day.isoformat(), description=rule.description,
            severity=dg.AssetCheckSeverity.WARN if rule.warn_only
            else dg.AssetCheckSeverity.ERROR,
            metadata={"detail": outcome.detail, **outcome.figures}))


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings.from_env()
    return dg.Definitions(assets=[build_kind_pipeline(kind, settings) for kind in KINDS.values()])

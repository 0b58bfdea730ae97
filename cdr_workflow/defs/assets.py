"""Per kind, three daily assets: the day's file → the loaded table → the reconciliation report.

The three are produced by one step per kind, day by day: find the files, load them (one
transaction), reconcile. Each day is recorded as its own partition materialization, so in a
backfill run one bad day fails alone while the other days load and report normally.
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg

from cdr_workflow.defs.common import (
    OWNERS,
    file_key,
    kpi_key,
    materialize_days,
    raise_for,
    report_key,
    signal_key,
    table_key,
)
from cdr_workflow.defs.insights import KPI_DESCRIPTION, SIGNAL_DESCRIPTION, day_insights
from cdr_workflow.defs.partitions import WAREHOUSE_POOL
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.layouts import table_columns, table_name
from cdr_workflow.load import find_day_files, load_day
from cdr_workflow.reconcile import CheckOutcome, DailyReport
from cdr_workflow.sources import Listing

TABLE_CHECKS = ("reject_ratio", "counts_add_up", "no_duplicate_ids", "amounts_match_file")
SIGNAL_CHECKS = ("volume_anomaly", "no_fraud_flags")
WARNINGS = {"reject_ratio", "volume_anomaly", "no_fraud_flags"}  # the rest are errors
Outcome = tuple[dt.date, dg.AssetKey, CheckOutcome]


def column_schema(kind: str) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.sql_type, description=c.description)
                                   for c in table_columns(kind)])


def _specs(kind: str) -> list[dg.AssetSpec]:
    common: dict[str, Any] = {"group_name": kind, "owners": OWNERS, "skippable": True,
                              "tags": {"cdr_kind": kind}}
    return [
        dg.AssetSpec(
            file_key(kind), kinds={"csv"}, **common,
            description=f"The day's Sinch {kind} CDR file(s) in the drop folder or S3 bucket, "
            "found by the file-name pattern, with sizes and fingerprints. A day with no file "
            "fails, naming where it looked."),
        dg.AssetSpec(
            table_key(kind), deps=[file_key(kind)], kinds={"table", "pandera"}, **common,
            metadata={"dagster/column_schema": column_schema(kind),
                      "dagster/table_name": table_name(kind)},
            description=f"Warehouse table `{table_name(kind)}`: one row per {kind} CDR that "
            "passed the pandera schema of its Sinch layout. Bad lines go to `cdr_rejects` with "
            "file, line and reasons; `cdr_files` records each file. Re-running a day replaces "
            "exactly that day, in one transaction."),
        dg.AssetSpec(
            report_key(kind), deps=[table_key(kind)], kinds={"markdown"}, **common,
            description=f"Daily reconciliation of {kind} CDRs: lines read vs loaded vs rejected "
            "(by reason), exact amount totals per currency and application key (file vs "
            "warehouse), result/reason mix, ids already loaded on other days, late records "
            "and missing earlier days. Stored in `cdr_reconciliation_daily` and written as "
            "markdown under the reports folder."),
        dg.AssetSpec(kpi_key(kind), deps=[table_key(kind)], kinds={"table", "html"}, **common,
                     description=KPI_DESCRIPTION[kind]),
        dg.AssetSpec(signal_key(kind), deps=[table_key(kind)], kinds={"table"}, **common,
                     description=SIGNAL_DESCRIPTION[kind]),
    ]


def build_kind_assets(kind: str, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"{kind}_pipeline",
        specs=_specs(kind),
        check_specs=[dg.AssetCheckSpec(n, asset=table_key(kind)) for n in TABLE_CHECKS]
        + [dg.AssetCheckSpec(n, asset=signal_key(kind)) for n in SIGNAL_CHECKS],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        can_subset=True,
    )
    def pipeline(context: dg.AssetExecutionContext, cdr: dg.ResourceParam[CdrWorkflow]
                 ) -> Iterator[dg.AssetCheckResult]:
        selected = context.selected_asset_keys
        outcomes: list[Outcome] = []
        listing = cdr.source.list()  # once per run, not once per day
        with cdr.warehouse.session():  # one connection for all the run's days
            failures = materialize_days(context, lambda day: _run_day(
                cdr, listing, kind, day, context.run_id, selected, outcomes), raise_at_end=False)
        yield from _check_results(outcomes)
        raise_for(failures, kind, len(context.partition_keys))

    return pipeline


def _run_day(cdr: CdrWorkflow, listing: Listing, kind: str, day: dt.date, load_id: str,
             selected: set[dg.AssetKey], outcomes: list[Outcome]
             ) -> Iterator[tuple[dg.AssetKey, dict[str, Any]]]:
    """Materialise the selected assets of one day, yielding (asset, metadata) as each is done."""
    files = find_day_files(cdr.source, kind, day, listing)
    if file_key(kind) in selected:
        yield file_key(kind), {
            "files": dg.MetadataValue.md("\n".join(
                f"- `{f.relative_path}`: {f.size_bytes:,} bytes, fingerprint `{f.fingerprint}`"
                for f in files)),
            "file_count": len(files),
            "size_bytes": sum(f.size_bytes for f in files),
        }
    report = None  # read back from the warehouse once, after the load, for checks and report
    if table_key(kind) in selected:
        result = load_day(cdr.source, cdr.warehouse, kind, day, load_id, listing,
                          cdr.settings.pseudonymisation_key)
        report = _report(cdr, kind, day)
        outcomes.extend((day, table_key(kind), check) for check in report.checks())
        yield table_key(kind), {
            "dagster/row_count": result.rows_loaded,
            "rows_read": result.rows_read,
            "rows_loaded": result.rows_loaded,
            "rows_rejected": result.rows_rejected,
            "files": len(result.files),
            "warehouse": cdr.warehouse.display_url,
        }
    if report_key(kind) in selected:
        report = report or _report(cdr, kind, day)
        markdown = report.markdown()
        path = cdr.settings.reports_dir / kind / f"{day.isoformat()}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown, encoding="utf-8")
        cdr.warehouse.replace_reconciliation(kind, day, report.rows(dt.datetime.now(dt.UTC)))
        yield report_key(kind), {"report": dg.MetadataValue.md(markdown),
                                 "report_path": dg.MetadataValue.path(str(path.resolve())),
                                 **report.numbers()}
    if {kpi_key(kind), signal_key(kind)} & selected:
        kpi_metadata, signal_metadata, checks = day_insights(cdr, kind, day)
        outcomes.extend((day, signal_key(kind), check) for check in checks)
        if kpi_key(kind) in selected:
            yield kpi_key(kind), kpi_metadata
        if signal_key(kind) in selected:
            yield signal_key(kind), signal_metadata


def _report(cdr: CdrWorkflow, kind: str, day: dt.date) -> DailyReport:
    facts = cdr.warehouse.day_facts(kind, day, cdr.settings.start_date)
    return DailyReport(facts, cdr.settings.max_reject_ratio)


def _check_results(outcomes: list[Outcome]) -> Iterator[dg.AssetCheckResult]:
    """One result per check for the run: it passes only if it passed on every day."""
    for asset_key, name in dict.fromkeys((key, c.name) for _, key, c in outcomes):
        days = [(day, c) for day, key, c in outcomes if key == asset_key and c.name == name]
        failed = [(day, c) for day, c in days if not c.passed]
        shown = failed or days[-1:]
        yield dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=name,
            passed=not failed,
            severity=dg.AssetCheckSeverity.WARN if name in WARNINGS
            else dg.AssetCheckSeverity.ERROR,
            description=days[0][1].description,
            metadata={"days_checked": len(days), "days_failed": len(failed),
                      "detail": "; ".join(f"{day}: {c.detail}" for day, c in shown)},
        )

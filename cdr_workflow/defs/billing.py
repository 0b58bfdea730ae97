"""Monthly invoice lines (group `billing`), kept equal to the loaded days."""

import datetime as dt

import dagster as dg

from cdr_workflow.billing import compute_month_billing, month_bounds, totals_by_currency
from cdr_workflow.defs.common import (
    OWNERS,
    WAREHOUSE_POOL,
    monthly_partitions,
    table_key,
)
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.kinds import KINDS
from cdr_workflow.reports.html import month_charts, monthly_html
from cdr_workflow.settings import Settings


def build_billing(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key="cdr_billing_monthly", group_name="billing", partitions_def=monthly_partitions(
            settings),
        deps=[table_key(kind) for kind in KINDS.values()], pool=WAREHOUSE_POOL,
        kinds={"table", "html"}, owners=OWNERS,
        description="Invoice lines per month: items and exact amount per currency × "
        "application key × verification method or voice call type, summed from the daily "
        "tables (month to date while the month is open). Table `cdr_billing_monthly` and a "
        "self-contained HTML page. Recomputed by `cdr_follow_up` after any day of the month "
        "loads or reloads.")
    def billing(context: dg.AssetExecutionContext, cdr: dg.ResourceParam[CdrWorkflow]
                ) -> dg.MaterializeResult:
        first, last = month_bounds(dt.date.fromisoformat(context.partition_key))
        month_to_date = last >= dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        lines = compute_month_billing(cdr.warehouse, first, month_to_date)
        path = cdr.settings.reports_dir / "billing" / f"{first:%Y-%m}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(monthly_html(first, month_to_date, lines,
                                     month_charts(cdr.warehouse, first, last)), encoding="utf-8")
        return dg.MaterializeResult(metadata={
            "lines": len(lines), "month_to_date": month_to_date,
            "html_report_file": str(path.resolve()),
            **{f"amount_{c}": float(v) for c, v in totals_by_currency(lines).items()},
            "invoice": dg.MetadataValue.md(
                "| kind | currency | key | product | items | amount |\n"
                "|---|---|---|---|---:|---:|\n" + "\n".join(
                    f"| {x.kind} | {x.currency} | {x.application_key} | {x.product} | "
                    f"{x.items} | {x.amount} |" for x in lines))})

    return billing


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[build_billing(Settings.from_env())])

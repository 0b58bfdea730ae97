"""The Dagster shell: partitions, assets, checks, jobs, sensors, schedules and resources."""

from __future__ import annotations

import dagster as dg

from cdr_workflow.defs.assets import build_kind_assets
from cdr_workflow.defs.automation import build_daily_schedule, build_file_sensor
from cdr_workflow.defs.common import kind_asset_keys
from cdr_workflow.defs.insights import build_billing, build_expected_match
from cdr_workflow.defs.partitions import daily_partitions
from cdr_workflow.defs.resources import CdrWorkflow
from cdr_workflow.layouts import KINDS
from cdr_workflow.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = daily_partitions(settings)
    assets = [build_kind_assets(kind, partitions) for kind in KINDS]
    assets += [build_expected_match(kind, partitions) for kind in KINDS]
    assets.append(build_billing(settings.start_date))
    day_job = dg.define_asset_job(
        "cdr_day_job",
        selection=dg.AssetSelection.assets(*[k for kind in KINDS for k in kind_asset_keys(kind)]),
        partitions_def=partitions,
        description="Loads and reconciles one day of every kind (or of one, from a sensor).",
    )
    return dg.Definitions(
        assets=assets,
        jobs=[day_job],
        sensors=[
            build_file_sensor(day_job, partitions, settings.sensor_running),
            dg.AutomationConditionSensorDefinition(
                "cdr_automation", target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                description="Brings the expected-records match and the monthly billing up to "
                "date after days load (including earlier days a late CDR resolves)."),
        ],
        schedules=[build_daily_schedule(day_job)],
        resources={"cdr": CdrWorkflow(settings)},
        executor=dg.in_process_executor,  # steps share one process: no per-step start-up cost
    )

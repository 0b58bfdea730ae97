"""What the assets need from the outside world, chosen from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cdr_workflow.settings import Settings
from cdr_workflow.sources import Source
from cdr_workflow.warehouse import Warehouse, open_warehouse


@dataclass
class CdrWorkflow:
    """The settings, the configured source and the warehouse: one resource, `cdr`.

    A plain object rather than a config schema, so no credential (warehouse URL, AWS keys)
    ever lands in run config or the UI.
    """

    settings: Settings

    @cached_property
    def source(self) -> Source:
        if self.settings.source == "s3":
            from cdr_workflow.sources.s3 import S3Source

            return S3Source.from_settings(self.settings)
        from cdr_workflow.sources.local import LocalSource

        return LocalSource(self.settings.drop_dir, self.settings.file_pattern)

    @cached_property
    def warehouse(self) -> Warehouse:
        return open_warehouse(self.settings.warehouse_url)

    @property
    def warehouse_kind(self) -> str:
        return "postgres" if self.settings.warehouse_url.startswith("postgres") else "duckdb"

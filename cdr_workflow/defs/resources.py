"""What the assets need from the outside world, chosen from the settings."""

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import dagster as dg

from cdr_workflow.alerts import Notifier
from cdr_workflow.settings import Settings
from cdr_workflow.sources import Source
from cdr_workflow.sources.base import EXPECTED_FILE_PATTERN
from cdr_workflow.warehouse import Warehouse, open_warehouse

S3_MAX_ATTEMPTS = 6  # standard retry mode: 5xx, throttling and timeouts, exponential backoff


@dataclass
class CdrWorkflow:
    """The settings, the configured source and the warehouse: one resource, `cdr`.

    A plain object rather than a config schema, so no credential (warehouse URL, AWS keys)
    ever lands in run config or the UI.
    """

    settings: Settings

    @cached_property
    def source(self) -> Source:
        """Where Sinch's CDR files are."""
        return self._source(self.settings.drop_dir, self.settings.s3_prefix,
                            self.settings.file_pattern)

    @cached_property
    def expected_source(self) -> Source:
        """Where the customer's own records are."""
        return self._source(self.settings.expected_dir, self.settings.expected_prefix,
                            re.compile(EXPECTED_FILE_PATTERN))

    def _source(self, folder: Path, prefix: str, pattern: re.Pattern[str]) -> Source:
        if self.settings.source == "s3":
            from dagster_aws.s3 import S3Resource

            from cdr_workflow.sources.s3 import S3Source

            # credentials, region and AWS_ENDPOINT_URL come from the standard AWS environment
            client = S3Resource(max_attempts=S3_MAX_ATTEMPTS).get_client()
            return S3Source(client, self.settings.s3_bucket or "", prefix, pattern)
        from cdr_workflow.sources.local import LocalSource

        return LocalSource(folder, pattern)

    @cached_property
    def notifier(self) -> Notifier:
        return Notifier(self.settings.alert_urls)

    @cached_property
    def warehouse(self) -> Warehouse:
        return open_warehouse(self.settings.warehouse_url)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"cdr": CdrWorkflow(Settings.from_env())})

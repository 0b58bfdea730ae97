"""Environment → one typed, validated settings object. Every setting has a working default."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from cdr_workflow.matching import Tolerances
from cdr_workflow.sources.base import DEFAULT_FILE_PATTERN

# Every setting, with its default ("" for none): the one list. The README's table, the run
# launcher's environment in docker/ and the Helm values are tested against it.
VARIABLES: dict[str, str] = {
    "CDR_SOURCE": "local",
    "CDR_DROP_DIR": "data/drop",
    "CDR_S3_BUCKET": "",
    "CDR_S3_PREFIX": "",
    "CDR_WAREHOUSE_URL": "duckdb:///data/warehouse.duckdb",
    "CDR_START_DATE": "2024-01-01",
    "CDR_DAYS_PER_RUN": "0",
    "CDR_FILE_PATTERN": DEFAULT_FILE_PATTERN,
    "CDR_REPORTS_DIR": "data/reports",
    "CDR_EXPECTED_DIR": "data/expected",
    "CDR_EXPECTED_PREFIX": "expected/",
    "CDR_MAX_REJECT_RATIO": "0.05",
    "CDR_AMOUNT_TOLERANCE": "0",
    "CDR_TIME_TOLERANCE_SECONDS": "300",
    "CDR_PSEUDONYMISATION_KEY": "",
    "CDR_SENSOR_STATUS": "running",
    "CDR_ALERT_URLS": "",
}


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    source: str
    drop_dir: Path
    s3_bucket: str | None
    s3_prefix: str
    warehouse_url: str = field(repr=False)  # may hold a password
    start_date: dt.date
    days_per_run: int  # a backfill's days per run where runs go in parallel; 0: one run
    file_pattern: re.Pattern[str]
    reports_dir: Path
    expected_dir: Path
    expected_prefix: str
    max_reject_ratio: float
    tolerances: Tolerances
    sensor_running: bool
    pseudonymisation_key: bytes | None = field(default=None, repr=False)
    alert_urls: tuple[str, ...] = field(default=(), repr=False)  # may hold tokens

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str:
            value = env.get(name, "")
            return value if value != "" else VARIABLES[name]

        source = get("CDR_SOURCE").lower()
        if source not in ("local", "s3"):
            raise SettingsError(f"CDR_SOURCE must be 'local' or 's3', not {source!r}")
        bucket = get("CDR_S3_BUCKET") or None
        if source == "s3" and not bucket:
            raise SettingsError("CDR_S3_BUCKET must name a bucket when CDR_SOURCE=s3")
        return cls(
            source=source,
            drop_dir=Path(get("CDR_DROP_DIR")),
            s3_bucket=bucket,
            s3_prefix=get("CDR_S3_PREFIX"),
            warehouse_url=_warehouse_url(get("CDR_WAREHOUSE_URL")),
            start_date=_date("CDR_START_DATE", get("CDR_START_DATE")),
            days_per_run=_whole_number("CDR_DAYS_PER_RUN", get("CDR_DAYS_PER_RUN")),
            file_pattern=_pattern(get("CDR_FILE_PATTERN")),
            reports_dir=Path(get("CDR_REPORTS_DIR")),
            expected_dir=Path(get("CDR_EXPECTED_DIR")),
            expected_prefix=get("CDR_EXPECTED_PREFIX"),
            max_reject_ratio=_ratio("CDR_MAX_REJECT_RATIO", get("CDR_MAX_REJECT_RATIO")),
            tolerances=Tolerances(
                amount=_non_negative("CDR_AMOUNT_TOLERANCE", get("CDR_AMOUNT_TOLERANCE")),
                seconds=float(_non_negative("CDR_TIME_TOLERANCE_SECONDS",
                                            get("CDR_TIME_TOLERANCE_SECONDS")))),
            pseudonymisation_key=_key(get("CDR_PSEUDONYMISATION_KEY")),
            alert_urls=_alert_urls(get("CDR_ALERT_URLS")),
            sensor_running=_choice("CDR_SENSOR_STATUS", get("CDR_SENSOR_STATUS"),
                                   ("running", "stopped")) == "running",
        )


def _warehouse_url(url: str) -> str:
    if not url.startswith(("duckdb:///", "postgresql://", "postgres://", "iceberg://")):
        raise SettingsError(
            "CDR_WAREHOUSE_URL must start with duckdb:///, postgresql:// or iceberg://, "
            f"not {url.split('://')[0]}://…")
    if url.startswith("iceberg://") and not url.removeprefix("iceberg://").split("/")[0]:
        raise SettingsError("CDR_WAREHOUSE_URL iceberg://CATALOG/NAMESPACE must name a catalog")
    return url


def _date(name: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"{name} must be a date YYYY-MM-DD, not {text!r}") from None


def _whole_number(name: str, text: str) -> int:
    if not text.isdigit():
        raise SettingsError(f"{name} must be a whole number (0 or more), not {text!r}")
    return int(text)


def _pattern(text: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise SettingsError(f"CDR_FILE_PATTERN is not a valid regex: {exc}") from None
    if not {"kind", "date"} <= set(pattern.groupindex):
        raise SettingsError("CDR_FILE_PATTERN must have named groups (?P<kind>…) and (?P<date>…)")
    return pattern


MIN_KEY_LENGTH = 16


def _key(text: str) -> bytes | None:
    if not text:
        return None
    if len(text) < MIN_KEY_LENGTH:
        raise SettingsError(f"CDR_PSEUDONYMISATION_KEY must be at least {MIN_KEY_LENGTH} "
                            "characters long")
    return text.encode()


def _choice(name: str, text: str, choices: tuple[str, ...]) -> str:
    if text.lower() not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {text!r}")
    return text.lower()


def _non_negative(name: str, text: str) -> Decimal:
    """Exact, so an amount tolerance of 0.0001 is 0.0001 and not its nearest float."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        raise SettingsError(f"{name} must be a number ≥ 0, not {text!r}")
    return value


def _ratio(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name} must be a number between 0 and 1, not {text!r}")
    return value


def _alert_urls(text: str) -> tuple[str, ...]:
    """Apprise URLs separated by spaces or commas; a bad one is named by position, since a URL
    may hold a token."""
    from cdr_workflow.alerts import valid_alert_url

    urls = tuple(u for u in re.split(r"[\s,]+", text) if u)
    for position, url in enumerate(urls, 1):
        if not valid_alert_url(url):
            raise SettingsError(f"CDR_ALERT_URLS: URL {position} of {len(urls)} is not an "
                                "Apprise URL (e.g. slack://…, msteams://…, mailto://…, json://…)")
    return urls

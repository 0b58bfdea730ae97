"""Every setting has a working default; a bad value fails at load, naming its variable."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from cdr_workflow.settings import Settings, SettingsError


def test_defaults_are_the_embedded_setup():
    settings = Settings.from_env({})
    assert settings.source == "local" and settings.drop_dir == Path("data/drop")
    assert settings.warehouse_url == "duckdb:///data/warehouse.duckdb"
    assert settings.start_date == dt.date(2024, 1, 1)
    assert settings.reports_dir == Path("data/reports")
    assert settings.expected_dir == Path("data/expected")
    assert settings.expected_prefix == "expected/"
    assert settings.tolerances.amount == Decimal(0) and settings.pseudonymisation_key is None
    assert settings.file_pattern.search("voice_app_app_2026-11-21.csv")
    assert not settings.file_pattern.search("expected_voice_2026-11-21.csv")


@pytest.mark.parametrize("variable,value", [
    ("CDR_SOURCE", "ftp"), ("CDR_WAREHOUSE_URL", "mysql://db"), ("CDR_START_DATE", "2024-13-01"),
    ("CDR_FILE_PATTERN", "(?P<kind>voice)"), ("CDR_FILE_PATTERN", "(unclosed"),
    ("CDR_MAX_REJECT_RATIO", "2"), ("CDR_AMOUNT_TOLERANCE", "-0.1"),
    ("CDR_TIME_TOLERANCE_SECONDS", "soon"), ("CDR_PSEUDONYMISATION_KEY", "short"),
    ("CDR_SENSOR_STATUS", "paused"), ("CDR_ALERT_URLS", "json://ok.example/hook nonsense"),
])
def test_a_bad_value_names_its_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_s3_needs_a_bucket():
    with pytest.raises(SettingsError, match="CDR_S3_BUCKET"):
        Settings.from_env({"CDR_SOURCE": "s3"})


def test_alert_urls_are_split_and_never_shown():
    slack = "slack://TA1AAAAAA/BB2BBBBBB/tokenxyzAAAAAAAAAAAAAAAA"
    settings = Settings.from_env({"CDR_ALERT_URLS": f"{slack}, json://h/p"})
    assert settings.alert_urls == (slack, "json://h/p")
    assert "tokenxyz" not in repr(settings)

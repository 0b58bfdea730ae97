"""Alerts: one message to every Apprise URL in CDR_ALERT_URLS (Slack, Teams, email, a JSON
webhook, …) when a day needs a person: it failed, its files did not arrive, an ERROR check
failed, or a fraud flag was raised. Sending never fails a load: a failure to notify is logged.

Messages are built from kinds, days, file names, check details and reasons; never from settings,
so no credential can reach them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import apprise

from cdr_workflow.signals import Signal

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    title: str
    body: str
    failure: bool = True  # a failure, or a warning (fraud flags)


def day_failed(kind: str, day: dt.date, reason: str, files_missing: bool) -> Alert:
    if files_missing:
        return Alert(f"{kind} CDRs for {day} have not arrived", reason)
    return Alert(f"{kind} CDRs for {day} failed to load", reason)


def check_failed(kind: str, day: dt.date, check: str, detail: str) -> Alert:
    return Alert(f"{kind} {day}: check {check} failed", detail)


def fraud_flagged(kind: str, day: dt.date, flagged: Sequence[Signal]) -> Alert:
    return Alert(f"{kind} {day}: {len(flagged)} fraud flag(s)", "\n".join(
        f"{s.flag}: {s.dimension} {s.value}, volume {s.volume} vs median "
        f"{s.trailing_median:g}, success {s.success_rate:.0%}" for s in flagged), failure=False)


class Notifier:
    """Sends alerts to the configured Apprise URLs; with none, sends nothing."""

    def __init__(self, urls: Sequence[str]):
        self.targets = apprise.Apprise()
        for url in urls:
            self.targets.add(url)

    def __bool__(self) -> bool:
        return len(self.targets) > 0

    def send(self, alert: Alert) -> bool:
        if not self:
            return False
        try:
            sent = self.targets.notify(
                body=alert.body or alert.title, title=f"cdr_workflow: {alert.title}",
                notify_type=apprise.NotifyType.FAILURE if alert.failure
                else apprise.NotifyType.WARNING)
        except Exception:  # noqa: BLE001 - an alert that cannot be sent must not fail a load
            LOG.exception("could not send alert %r", alert.title)
            return False
        if not sent:
            LOG.warning("could not send alert %r to every target", alert.title)
        return bool(sent)


def valid_alert_url(url: str) -> bool:
    return apprise.Apprise().add(url)

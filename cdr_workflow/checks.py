"""The daily checks: each declared once (name, what it promises, how serious a failure is);
reconciliation and signals produce their outcomes day by day."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckRule:
    name: str
    description: str
    warn_only: bool = False  # a failure warns; otherwise it is an error


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str
    figures: dict[str, float | int] = field(default_factory=dict)  # plotted day by day


TABLE_RULES = (
    CheckRule("reject_ratio", "At most CDR_MAX_REJECT_RATIO (default 5%) of the day's lines "
              "are rejected.", warn_only=True),
    CheckRule("counts_add_up", "For every file of the day, lines read = rows loaded + rows "
              "rejected: no line is silently lost; and the table holds the rows the ledger "
              "says were loaded."),
    CheckRule("no_duplicate_ids", "Every CDR id of the day appears once in the table, across "
              "the day's files and the other days."),
    CheckRule("key_columns_present", "Every file of the day has the columns that carry identity, "
              "time and money in its layout (the id, the event time, Amount, Currency): a "
              "renamed or dropped one would load those values as empty."),
    CheckRule("amounts_match_file", "Exact amount totals per currency and application key: "
              "the day's files against the warehouse."),
)
SIGNAL_RULES = (
    CheckRule("volume_anomaly", "The day's volume is within ±50% of its trailing 7-day median.",
              warn_only=True),
    CheckRule("no_fraud_flags", "No country or destination is flagged for pumping or IRSF-like "
              "traffic.", warn_only=True),
)
RULES = {rule.name: rule for rule in (*TABLE_RULES, *SIGNAL_RULES)}

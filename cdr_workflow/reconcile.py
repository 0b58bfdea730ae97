"""Daily reconciliation: warehouse facts → a report object → markdown, table rows, checks.

Pure logic: the facts come from `day_facts.read_day_facts`; nothing here touches Dagster or a DB.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from cdr_workflow.checks import CheckOutcome
from cdr_workflow.day_facts import DayFacts
from cdr_workflow.warehouse.day_load import AmountKey


@dataclass(frozen=True)
class AmountLine:
    currency: str | None
    application_key: str | None
    file_total: Decimal
    warehouse_total: Decimal

    @property
    def matches(self) -> bool:
        return self.file_total == self.warehouse_total


@dataclass(frozen=True)
class DailyReport:
    facts: DayFacts
    max_reject_ratio: float

    @property
    def kind(self) -> str:
        return self.facts.kind.name

    @property
    def day(self) -> dt.date:
        return self.facts.cdr_date

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.facts.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.facts.files)

    @property
    def rows_in_table(self) -> int:
        """Rows the table holds for the day, counted in the table (not the ledger)."""
        return sum(self.facts.outcome_mix.values())

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.facts.files)

    @property
    def reject_ratio(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    @property
    def late_records(self) -> int:
        return self.facts.late_before + self.facts.late_after

    @property
    def amounts(self) -> list[AmountLine]:
        keys: set[AmountKey] = set(self.facts.file_amounts) | set(self.facts.warehouse_amounts)
        zero = Decimal(0)
        return [AmountLine(c, k, self.facts.file_amounts.get((c, k), zero),
                           self.facts.warehouse_amounts.get((c, k), zero))
                for c, k in sorted(keys, key=lambda key: (str(key[0]), str(key[1])))]

    def totals_by_currency(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for line in self.amounts:
            currency = line.currency or "none"
            totals[currency] = totals.get(currency, Decimal(0)) + line.warehouse_total
        return totals

    def checks(self) -> list[CheckOutcome]:
        unbalanced = [f.source_file for f in self.facts.files if not f.balances]
        mismatched = [line for line in self.amounts if not line.matches]
        keys = {f.sinch_name for lay in self.facts.kind.layouts for f in lay.key_fields}
        lacking = {f.source_file: sorted(keys & set(f.schema_drift.missing))
                   for f in self.facts.files if keys & set(f.schema_drift.missing)}
        return [
            CheckOutcome(
                "reject_ratio", self.reject_ratio <= self.max_reject_ratio,
                f"{self.rows_rejected} of {self.rows_read} lines rejected "
                f"({self.reject_ratio:.2%}; at most {self.max_reject_ratio:.0%} allowed)",
                {"reject_ratio": round(self.reject_ratio, 6),
                 "rows_rejected": self.rows_rejected}),
            CheckOutcome(
                "counts_add_up", not unbalanced and self.rows_in_table == self.rows_loaded,
                "unbalanced: " + ", ".join(unbalanced) if unbalanced else
                f"the ledger says {self.rows_loaded} rows loaded, the table holds "
                f"{self.rows_in_table}" if self.rows_in_table != self.rows_loaded else
                f"{len(self.facts.files)} file(s) balance",
                {"rows_read": self.rows_read, "unbalanced_files": len(unbalanced),
                 "rows_in_table": self.rows_in_table}),
            CheckOutcome(
                "no_duplicate_ids", self.facts.duplicate_ids_in_table == 0,
                f"{self.facts.duplicate_ids_in_table} duplicated id(s)",
                {"duplicated_ids": self.facts.duplicate_ids_in_table}),
            CheckOutcome(
                "key_columns_present", not lacking,
                "; ".join(f"{name} lacks {', '.join(cols)}" for name, cols in lacking.items())
                or f"{len(self.facts.files)} file(s) have their id, time and money columns",
                {"files_lacking_key_columns": len(lacking)}),
            CheckOutcome(
                "amounts_match_file", not mismatched,
                "; ".join(f"{m.currency}/{m.application_key}: file {m.file_total} vs "
                          f"warehouse {m.warehouse_total}" for m in mismatched)
                or f"{len(self.amounts)} currency × application key total(s) match",
                {"mismatched_totals": len(mismatched)}),
        ]

    def numbers(self) -> dict[str, float | int]:
        """Numeric metadata that the UI plots across partitions."""
        figures: dict[str, float | int] = {
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "reject_ratio": round(self.reject_ratio, 6),
            "late_records": self.late_records,
            "ids_loaded_on_other_days": self.facts.duplicates_of_other_days,
            "missing_days_before": len(self.facts.missing_days_before),
        }
        for currency, total in self.totals_by_currency().items():
            figures[f"amount_{currency}"] = float(total)
        return figures

    def rows(self) -> list[dict[str, object]]:
        """Rows for `cdr_reconciliation_daily` (without `computed_at`)."""

        def row(measure: str, dimension: str | None, value: object,
                reference: object = None, matches: bool | None = None) -> dict[str, object]:
            return {"kind": self.kind, "cdr_date": self.day, "measure": measure,
                    "dimension": dimension, "value": _exact(value),
                    "reference_value": _exact(reference), "matches": matches}

        out = [row("lines_read", None, self.rows_read),
               row("rows_loaded", None, self.rows_loaded, self.rows_in_table,
                   self.rows_loaded == self.rows_in_table),
               row("rows_rejected", None, self.rows_rejected,
                   self.rows_read - self.rows_loaded,
                   self.rows_read == self.rows_loaded + self.rows_rejected),
               row("late_records_before_day", None, self.facts.late_before),
               row("late_records_after_day", None, self.facts.late_after),
               row("ids_loaded_on_other_days", None, self.facts.duplicates_of_other_days),
               row("missing_days_before", None, len(self.facts.missing_days_before))]
        out += [row("rejects_by_reason", reason, n)
                for reason, n in sorted(self.facts.reject_reasons.items())]
        out += [row("amount", f"{a.currency}/{a.application_key}", a.warehouse_total,
                    a.file_total, a.matches) for a in self.amounts]
        out += [row("outcome_mix", f"{result}/{reason}", n)
                for (result, reason), n in sorted(self.facts.outcome_mix.items(),
                                                  key=lambda kv: str(kv[0]))]
        return out

    def markdown(self) -> str:
        lines = [f"# {self.kind.capitalize()} CDRs, {self.day.isoformat()}", ""]
        failed = [c for c in self.checks() if not c.passed]
        lines.append("**Status:** " + ("all checks pass" if not failed else
                                       "attention: " + ", ".join(c.name for c in failed)))
        lines += ["", "## Lines", "", "| file | read | loaded | rejected |", "|---|---:|---:|---:|"]
        lines += [f"| {f.source_file} | {f.rows_read} | {f.rows_loaded} | {f.rows_rejected} |"
                  for f in self.facts.files]
        lines.append(f"| **total** | {self.rows_read} | {self.rows_loaded} | "
                     f"{self.rows_rejected} |")
        drifted = [f for f in self.facts.files if f.schema_drift]
        if drifted:
            lines += ["", "## Schema drift", "", "| file | header vs layout |", "|---|---|"]
            lines += [f"| {f.source_file} | {f.schema_drift.describe()} |" for f in drifted]
        if self.facts.reject_reasons:
            lines += ["", "## Rejects by reason", "", "| reason | lines |", "|---|---:|"]
            lines += [f"| {r} | {n} |" for r, n in sorted(self.facts.reject_reasons.items(),
                                                          key=lambda kv: -kv[1])]
        if self.amounts:
            lines += ["", "## Amounts (file vs warehouse, exact)", "",
                      "| currency | application key | file | warehouse | match |",
                      "|---|---|---:|---:|---|"]
            lines += [f"| {a.currency} | {a.application_key} | {a.file_total} | "
                      f"{a.warehouse_total} | {'yes' if a.matches else '**NO**'} |"
                      for a in self.amounts]
        lines += ["", "## Result / reason mix", "", "| result | reason | calls |", "|---|---|---:|"]
        lines += [f"| {r} | {why} | {n} |" for (r, why), n in
                  sorted(self.facts.outcome_mix.items(), key=lambda kv: -kv[1])]
        lines += ["", "## Continuity", "",
                  f"- ids already loaded on another day: {self.facts.duplicates_of_other_days}",
                  f"- late records (event time before the day): {self.facts.late_before}",
                  f"- records dated after the day: {self.facts.late_after}",
                  "- missing days before this one: " + _days(self.facts.missing_days_before)]
        lines += ["", "## Checks", ""]
        lines += [f"- {'✅' if c.passed else '❌'} **{c.name}**: {c.detail}" for c in self.checks()]
        return "\n".join(lines) + "\n"


def _days(days: list[dt.date]) -> str:
    if not days:
        return "none"
    shown = ", ".join(d.isoformat() for d in days[-10:])
    return f"{len(days)} ({'… ' if len(days) > 10 else ''}{shown})"


def _exact(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.000001"))

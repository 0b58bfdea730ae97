"""Monthly invoice lines: items and exact amount per kind × currency × application key ×
product (verification method or call type), summed from the daily tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from cdr_workflow.kinds import KINDS, Kind
from cdr_workflow.warehouse import Warehouse
from cdr_workflow.warehouse.tables import BILLING


@dataclass(frozen=True)
class InvoiceLine:
    kind: str
    currency: str | None
    application_key: str | None
    product: str | None
    items: int
    amount: Decimal | None


def billing_query(kind: Kind) -> str:
    amount = "SUM(amount)" if kind.has_amounts else "NULL"
    currency = "currency" if kind.has_amounts else "NULL"
    return (f"SELECT {currency}, application_key, {kind.product_column}, COUNT(*), {amount} "
            f"FROM {kind.table} WHERE cdr_date BETWEEN ? AND ? GROUP BY 1, 2, 3 "
            "ORDER BY 1, 2, 3")


def month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    first = month.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def totals_by_currency(lines: list[InvoiceLine]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for line in lines:
        currency = line.currency or "none"
        totals[currency] = totals.get(currency, Decimal(0)) + (line.amount or Decimal(0))
    return totals


def compute_month_billing(warehouse: Warehouse, month: dt.date, month_to_date: bool
                          ) -> list[InvoiceLine]:
    """Invoice lines of the month, replaced in `cdr_billing_monthly`."""
    first, last = month_bounds(month)
    lines = [InvoiceLine(kind.name, currency, key, product, int(items),
                         None if amount is None else Decimal(str(amount)))
             for kind in KINDS.values()
             for currency, key, product, items, amount in warehouse.query(
                 billing_query(kind), (first, last))]
    now = dt.datetime.now(dt.UTC)
    warehouse.replace_rows(BILLING, {"month": first}, BILLING.rows(
        [vars(line) for line in lines],
        {"month": first, "month_to_date": month_to_date, "computed_at": now}))
    return lines

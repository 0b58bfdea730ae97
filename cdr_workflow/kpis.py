"""Telecom KPIs per kind, day and dimension value: ASR, ACD, NER, minutes and cost per minute
for calls; conversion and cost per success for verifications."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cdr_workflow.kinds import Kind
from cdr_workflow.warehouse import Warehouse
from cdr_workflow.warehouse.tables import KPIS

EXACT = Decimal("0.000001")


@dataclass(frozen=True)
class Kpi:
    dimension: str
    value: str
    measure: str
    figure: Decimal


def kpi_queries(kind: Kind) -> dict[str, str]:
    """Per dimension: counts and durations by dimension value, and cost by value × currency."""
    counts = f"COUNT(*), SUM(CASE WHEN result = '{kind.success_result}' THEN 1 ELSE 0 END)"
    if kind.duration_column:
        reached = ", ".join(f"'{r}'" for r in kind.reached_results)
        counts += (f", SUM(CASE WHEN result IN ({reached}) THEN 1 ELSE 0 END)"
                   f", SUM(CASE WHEN result = '{kind.success_result}' "
                   f"THEN {kind.duration_column} ELSE 0 END)")
    queries = {}
    for dim in kind.kpi_dimensions:
        value = f"COALESCE(CAST({dim.sql} AS VARCHAR), 'unknown')"
        queries[f"{dim.name}:counts"] = (f"SELECT {value}, {counts} FROM {kind.table} "
                                         "WHERE cdr_date = ? GROUP BY 1")
        if kind.has_amounts:
            queries[f"{dim.name}:cost"] = (f"SELECT {value}, currency, SUM(amount) FROM "
                                           f"{kind.table} WHERE cdr_date = ? "
                                           "AND amount IS NOT NULL GROUP BY 1, 2")
    return queries


def kpis(kind: Kind, results: dict[str, list[tuple]]) -> list[Kpi]:
    """The KPIs from the rows of `kpi_queries`."""
    out: list[Kpi] = []
    for dim in kind.kpi_dimensions:
        per_value: dict[str, dict[str, Decimal | None]] = {}
        for value, total, successes, *timed in results[f"{dim.name}:counts"]:
            per_value[value] = _count_measures(kind, _number(total), _number(successes), timed)
        for value, currency, cost in results.get(f"{dim.name}:cost", []):
            figures = per_value.setdefault(value, {})
            figures[f"cost_{currency}"] = _number(cost)
            per = "cost_per_minute" if kind.cost_base == "minutes" else "cost_per_success"
            figures[f"{per}_{currency}"] = _ratio(_number(cost),
                                                  figures.get(kind.cost_base) or Decimal(0))
        out += [Kpi(dim.name, value, measure, figure)
                for value, figures in sorted(per_value.items())
                for measure, figure in figures.items() if figure is not None]
    return out


def _count_measures(kind: Kind, total: Decimal, successes: Decimal, timed: list[Any]
                    ) -> dict[str, Decimal | None]:
    if not kind.duration_column:
        return {"requests": total, "successes": successes,
                kind.rate_name: _ratio(successes, total)}
    reached, answered_seconds = (_number(v) for v in timed)
    return {"attempts": total, "answered": successes, kind.rate_name: _ratio(successes, total),
            "ner": _ratio(reached, total), "acd_seconds": _ratio(answered_seconds, successes),
            "minutes": (answered_seconds / 60).quantize(EXACT)}


def _number(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part / whole).quantize(EXACT) if whole else None


def compute_day_kpis(warehouse: Warehouse, kind: Kind, day: dt.date) -> list[Kpi]:
    """Compute a day's KPIs and replace them in `cdr_kpis_daily`."""
    results = {name: warehouse.query(sql, (day,)) for name, sql in kpi_queries(kind).items()}
    rows = kpis(kind, results)
    warehouse.replace_rows(KPIS, {"kind": kind.name, "cdr_date": day}, KPIS.rows(
        [{"dimension": k.dimension, "dimension_value": k.value, "measure": k.measure,
          "value": k.figure} for k in rows], {"kind": kind.name, "cdr_date": day}))
    return rows

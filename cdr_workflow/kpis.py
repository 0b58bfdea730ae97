"""Telecom KPIs per kind, day and dimension value: ASR, ACD, NER, minutes and cost per minute
for calls; conversion and cost per success for verifications."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cdr_workflow.kinds import Kind
from cdr_workflow.warehouse import Warehouse
from cdr_workflow.warehouse.tables import KPIS, TOTAL_TYPE, sql_type

EXACT = Decimal("0.000001")
COST_SQL = sql_type(TOTAL_TYPE)


@dataclass(frozen=True)
class Kpi:
    dimension: str
    value: str
    measure: str
    figure: Decimal


def kpi_parts(kind: Kind) -> list[str]:
    """Per dimension, the day's counts by value and its cost by value × currency, as SELECTs
    of one shape, each with one day parameter: (part, value, currency, total, successes,
    reached, answered seconds, cost), a part being "<dimension>:counts" or "<dimension>:cost".
    """
    success = f"result = '{kind.success_result}'"
    counted = ["COUNT(*)", f"SUM(CASE WHEN {success} THEN 1 ELSE 0 END)"]
    if kind.duration_column:
        reached = ", ".join(f"'{r}'" for r in kind.reached_results)
        counted += [f"SUM(CASE WHEN result IN ({reached}) THEN 1 ELSE 0 END)",
                    f"SUM(CASE WHEN {success} THEN {kind.duration_column} ELSE 0 END)"]
    else:
        counted += ["NULL", "NULL"]
    counts = ", ".join(f"CAST({c} AS BIGINT)" for c in counted)
    none = "CAST(NULL AS BIGINT)"
    parts = []
    for dim in kind.kpi_dimensions:
        value = f"COALESCE(CAST({dim.sql} AS VARCHAR), 'unknown')"
        parts.append(f"SELECT '{dim.name}:counts', {value}, CAST(NULL AS VARCHAR), {counts}, "
                     f"CAST(NULL AS {COST_SQL}) FROM {kind.table} WHERE cdr_date = ? "
                     "GROUP BY 2")
        if kind.has_amounts:
            parts.append(f"SELECT '{dim.name}:cost', {value}, currency, {none}, {none}, "
                         f"{none}, {none}, CAST(SUM(amount) AS {COST_SQL}) FROM {kind.table} "
                         "WHERE cdr_date = ? AND amount IS NOT NULL GROUP BY 2, 3")
    return parts


def day_kpi_rows(warehouse: Warehouse, kind: Kind, day: dt.date) -> list[tuple]:
    """The rows of every part in one statement: one round trip, not one per part."""
    parts = kpi_parts(kind)
    return warehouse.query(" UNION ALL ".join(parts), (day,) * len(parts))


def kpis(kind: Kind, rows: list[tuple]) -> list[Kpi]:
    """The KPIs from the rows of `kpi_parts`."""
    parts: dict[str, list[tuple]] = {}
    for part, *figures in rows:
        parts.setdefault(part, []).append(tuple(figures))
    out: list[Kpi] = []
    for dim in kind.kpi_dimensions:
        per_value: dict[str, dict[str, Decimal | None]] = {}
        for value, _, total, successes, *timed, _ in parts.get(f"{dim.name}:counts", []):
            per_value[value] = _count_measures(kind, _number(total), _number(successes), timed)
        for value, currency, *_, cost in parts.get(f"{dim.name}:cost", []):
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
    rows = kpis(kind, day_kpi_rows(warehouse, kind, day))
    warehouse.replace_rows(KPIS, {"kind": kind.name, "cdr_date": day}, KPIS.rows(
        [{"dimension": k.dimension, "dimension_value": k.value, "measure": k.measure,
          "value": k.figure} for k in rows], {"kind": kind.name, "cdr_date": day}))
    return rows

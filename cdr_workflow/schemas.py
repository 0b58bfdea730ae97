"""pandera schemas, one per Sinch layout, derived from `layouts`.

The reader has already typed every column (Arrow-backed, no `coerce`), so the schemas check the
business rules only: required values, enums, patterns, signs, time order, unique ids.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pandera.pandas as pa

from cdr_workflow.layouts import LAYOUTS, PATTERN_MEANINGS, Field, FieldType, Layout, TimeOrder


def _checks(field: Field) -> list[pa.Check]:
    checks = []
    if field.allowed is not None:
        checks.append(pa.Check.isin(field.allowed,
                                    error=f"is not one of {', '.join(field.allowed)}"))
    if field.pattern is not None:
        checks.append(pa.Check.str_matches(
            field.pattern, error=f"is not {PATTERN_MEANINGS[field.pattern]}"))
    if field.non_negative:
        checks.append(pa.Check.ge(0, error="is negative"))
    if field.type is FieldType.STRING and field.required:
        checks.append(pa.Check(lambda s: s.str.len() > 0, element_wise=False, error="is empty"))
    return checks


def _time_order_check(order: TimeOrder) -> pa.Check:
    def later_not_before_earlier(df: pd.DataFrame) -> pd.Series:
        earlier, later = df[order.earlier], df[order.later]
        return (later.isna() | earlier.isna() | (later >= earlier)).astype(bool)

    return pa.Check(later_not_before_earlier, error=f"{order.later} is before {order.earlier}")


def _column(layout: Layout, field: Field) -> pa.Column:
    return pa.Column(
        pd.ArrowDtype(field.type.arrow),
        checks=_checks(field),
        nullable=not field.required,
        unique=field.column == layout.id_column,
        report_duplicates="exclude_first",
        description=field.description,
        title=field.sinch_name,
    )


@cache
def schema_for(layout_name: str) -> pa.DataFrameSchema:
    layout = LAYOUTS[layout_name]
    return pa.DataFrameSchema(
        {f.column: _column(layout, f) for f in layout.fields},
        checks=[_time_order_check(o) for o in layout.time_orders],
        name=f"{layout.name} CDR",
        strict=False,  # lineage and extra columns ride along
    )

"""Text fields → typed Arrow columns, and the pandera schema of the layout over them.

A value that does not convert or breaks a rule becomes a reason for its row, never an error
for the file.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdr_workflow.header import ColumnMap
from cdr_workflow.layouts import AMOUNT_SCALE, TIMESTAMP_TYPE, Field, FieldType, Layout

if TYPE_CHECKING:
    import pandas as pd

_INTEGER = r"^[+-]?\d{1,18}$"
_DECIMAL = rf"^[+-]?\d{{1,12}}(\.\d{{1,{AMOUNT_SCALE}}})?$"
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)?$"
_HAS_ZONE = r"(Z|[+-]\d{2}(:?\d{2})?)$"

Reasons = dict[int, list[str]]


def typed_columns(strings: pa.Table, column_map: ColumnMap, may_hold_nul: bool = True
                  ) -> tuple[pa.Table, Reasons]:
    """Convert each layout column to its Arrow type; unconvertible values become reasons.
    `may_hold_nul=False` (the caller saw no NUL byte in the text) skips looking for one."""
    reasons: Reasons = {}
    arrays, names = [], []
    for f in column_map.layout.fields:
        position = column_map.positions.get(f.column)
        if position is None:
            arrays.append(pa.nulls(strings.num_rows, f.type.arrow))
        else:
            text = strings.column(position).combine_chunks()
            if _trimmed(column_map.layout, f):
                text = _trim(text)
            arrays.append(convert(text, f, reasons, may_hold_nul))
        names.append(f.column)
    if column_map.call_type:
        arrays.append(pa.repeat(pa.scalar(column_map.call_type), strings.num_rows))
        names.append("call_type")
    arrays.append(_extra_fields(strings, column_map.extras))
    names.append("extra_fields")
    return pa.table(arrays, names=names), reasons


def _trimmed(layout: Layout, f: Field) -> bool:
    """Ids, enumerations, coded values, numbers and times lose surrounding whitespace; free
    text (Custom, numbers as dialled) is kept as it was."""
    return (f.column == layout.id_column or f.allowed is not None or f.pattern is not None
            or f.type is not FieldType.STRING)


def _trim(text: pa.Array) -> pa.Array:
    if not _may_need_trim(text):  # the common case: no copy of the column
        return text
    trimmed = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


_MAY_BE_SPACE = np.zeros(256, dtype=bool)
_MAY_BE_SPACE[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = True
_MAY_BE_SPACE[0x80:] = True  # a byte of a multibyte character: Unicode has spaces beyond ASCII


def _may_need_trim(text: pa.Array) -> bool:
    """Whether a value may begin or end with whitespace, or be empty, by its first and last
    bytes (read from the column's buffers: 0.1 ms where trimming copies it, 1 ms)."""
    if not pa.types.is_string(text.type):
        return True
    offsets, data = _string_buffers(text)
    starts, ends = offsets[:-1], offsets[1:]
    if text.null_count:
        valid = text.is_valid().to_numpy(zero_copy_only=False)
        starts, ends = starts[valid], ends[valid]
    if (ends <= starts).any():
        return True
    return bool(_MAY_BE_SPACE[data[starts]].any() or _MAY_BE_SPACE[data[ends - 1]].any())


def _string_buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string column's offsets (one more than its values) and its bytes, without copies."""
    offsets = np.frombuffer(text.buffers()[1], np.int32)[text.offset:text.offset + len(text) + 1]
    data = text.buffers()[2]
    return offsets, np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)


def shown(value: object, limit: int = 40) -> str:
    """A value quoted for a reject reason, shortened."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def convert(text: pa.Array, f: Field, reasons: Reasons, may_hold_nul: bool = True
            ) -> pa.Array:
    """Empty fields are already null; a value that does not parse becomes a reason."""
    if f.type is FieldType.STRING:
        if may_hold_nul:
            _note(pc.match_substring(text, "\x00"), f"{f.sinch_name} contains a NUL byte",
                  reasons)
        return text
    given = text  # a reason quotes the file's value: '1,234.50', not what was read of it
    if f.type is FieldType.DECIMAL and pc.any(pc.match_substring(text, ",")).as_py():
        text = pc.replace_substring(text, ",", ".")  # a decimal comma is tolerated
    invalid = _malformed(text, f.type)
    usable = text
    if pc.any(invalid).as_py():
        rows = np.flatnonzero(invalid.fill_null(False).to_numpy(zero_copy_only=False))
        for row in rows:
            reasons.setdefault(int(row), []).append(
                f"{f.sinch_name} is not {_expected(f.type)}: {shown(given[row].as_py())}")
        usable = pc.if_else(invalid, pa.scalar(None, pa.string()), text)
    if f.type is FieldType.TIMESTAMP:
        return _to_timestamp(usable, f, reasons)
    if pc.any(pc.starts_with(usable, "+")).as_py():
        usable = pc.replace_substring_regex(usable, r"^\+", "")  # "+7" is 7
    try:
        return pc.cast(usable, f.type.arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # out of range: row by row
        return _cast_each(usable, f, reasons)


def _malformed(text: pa.Array, field_type: FieldType) -> pa.Array:
    """True where a value does not have its type's form (false where it is null). The
    pattern is the dearest check per value, so values known to be well formed skip it:
    plain digits for integers, times in the column's common `yyyy-MM-ddTHH:mm:ss[.f…]Z`
    form; only the others (a bad line's value, say) are matched."""
    malformed = np.zeros(len(text), dtype=bool)
    unknown = np.flatnonzero(text.is_valid().to_numpy(zero_copy_only=False)
                             & ~_well_formed(text, field_type))
    if len(unknown):
        pattern = {FieldType.INTEGER: _INTEGER, FieldType.DECIMAL: _DECIMAL,
                   FieldType.TIMESTAMP: _TIMESTAMP}[field_type]
        judged = text if len(unknown) == len(text) else text.take(pa.array(unknown))
        matched = pc.match_substring_regex(judged, pattern)
        malformed[unknown] = ~matched.to_numpy(zero_copy_only=False)
    return pa.array(malformed)


def _well_formed(text: pa.Array, field_type: FieldType) -> np.ndarray:
    """Where a value is known to have its type's form without its pattern."""
    if field_type is FieldType.INTEGER:
        plain = pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), 18))
        return plain.fill_null(False).to_numpy(zero_copy_only=False)
    if field_type is FieldType.TIMESTAMP:
        return _plain_times(text)
    return np.zeros(len(text), dtype=bool)


_PLAIN_SECONDS = "0000-00-00T00:00:00"  # 0: any digit


def _plain_time(size: int) -> np.ndarray | None:
    """The common form `yyyy-MM-ddTHH:mm:ss[.f…]Z` of a time of `size` bytes (a fraction of
    1 to 9 digits, or none), as bytes; None for a size no such time has."""
    fraction = size - len(_PLAIN_SECONDS) - 1
    if fraction != 0 and not 2 <= fraction <= 10:
        return None
    form = _PLAIN_SECONDS + ("." + "0" * (fraction - 1) if fraction else "") + "Z"
    return np.frombuffer(form.encode(), dtype=np.uint8)


def _plain_times(text: pa.Array) -> np.ndarray:
    """Where a value is in the common form at the column's most frequent size (as a file's
    writer prints its times; a space may stand for the T), read as a matrix of bytes."""
    plain = np.zeros(len(text), dtype=bool)
    if text.null_count == len(text) or not pa.types.is_string(text.type):
        return plain
    offsets, data = _string_buffers(text)
    sizes = np.diff(offsets)
    valid = text.is_valid().to_numpy(zero_copy_only=False)
    size = int(np.bincount(np.minimum(sizes[valid], 32)).argmax())  # no form is longer
    form = _plain_time(size)
    if form is None:
        return plain
    rows = np.flatnonzero(valid & (sizes == size))
    if len(rows) < len(text) - text.null_count:  # a few values of another size: left out
        offsets, data = _string_buffers(text.take(pa.array(rows)))
    times = data[offsets[0]:offsets[-1]].reshape(-1, size)  # a value per row, a byte per column
    digits, literals = np.flatnonzero(form == ord("0")), np.flatnonzero(form != ord("0"))
    literals = literals[literals != 10]  # the T, which a space may stand for
    plain[rows] = (((times[:, digits] - ord("0")) <= 9).all(axis=1)  # below "0" wraps around
                   & (times[:, literals] == form[literals]).all(axis=1)
                   & ((times[:, 10] == ord("T")) | (times[:, 10] == ord(" "))))
    return plain


def _cast_each(text: pa.Array, f: Field, reasons: Reasons) -> pa.Array:
    values = []
    for row, value in enumerate(text.to_pylist()):
        try:
            values.append(pc.cast(pa.array([value], pa.string()), f.type.arrow)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            reasons.setdefault(row, []).append(
                f"{f.sinch_name} is not {_expected(f.type)}: {shown(value)}")
            values.append(None)
    return pa.array(values, f.type.arrow)


def _expected(field_type: FieldType) -> str:
    return {
        FieldType.INTEGER: "an integer",
        FieldType.DECIMAL: f"a decimal with at most {AMOUNT_SCALE} decimal places",
        FieldType.TIMESTAMP: "an ISO 8601 or 'yyyy-MM-dd HH:mm:ss' timestamp",
    }[field_type]


def _to_timestamp(text: pa.Array, f: Field, reasons: Reasons) -> pa.Array:
    """Values without a zone are UTC. Stored at microsecond precision."""
    zoned = text
    if pc.all(pc.ends_with(text, "Z")).as_py() is False:  # the common case costs one look
        has_zone = pc.match_substring_regex(text, _HAS_ZONE)
        if pc.all(has_zone).as_py() is False:
            zoned = pc.if_else(has_zone, text, pc.binary_join_element_wise(text, "Z", ""))
    nanos = pa.timestamp("ns", tz="UTC")
    try:
        parsed = pc.cast(zoned, nanos)
    except pa.ArrowInvalid:  # well-formed but impossible (month 13): find the rows one by one
        values = []
        for row, value in enumerate(zoned.to_pylist()):
            try:
                values.append(pc.cast(pa.array([value]), nanos)[0])
            except pa.ArrowInvalid:
                reasons.setdefault(row, []).append(
                    f"{f.sinch_name} is not a valid date and time: {shown(text[row].as_py())}")
                values.append(pa.scalar(None, nanos))
        parsed = pa.array([v.as_py() for v in values], nanos)
    return pc.cast(parsed, TIMESTAMP_TYPE, safe=False)


def _note(mask: pa.Array, reason: str, reasons: Reasons) -> None:
    if pc.any(mask).as_py():
        for row in np.flatnonzero(mask.to_numpy(zero_copy_only=False)):
            reasons.setdefault(int(row), []).append(reason)


def _extra_fields(strings: pa.Table, extras: dict[str, int]) -> pa.Array:
    """Columns the layout does not know are kept, as one JSON object per row."""
    if not extras:
        return pa.nulls(strings.num_rows, pa.string())
    values = {name: strings.column(pos).to_pylist() for name, pos in extras.items()}
    return pa.array(
        [json.dumps({n: v[i] for n, v in values.items()}) for i in range(strings.num_rows)],
        pa.string(),
    )


def validate(typed: pa.Table, layout: Layout, reasons: Reasons, lines: np.ndarray,
             unique_ids: bool = True) -> None:
    """Run the layout's pandera schema on rows that typed cleanly; each failure becomes a
    reason quoting the value (a duplicate id names the line of its first copy). With
    `unique_ids=False` duplicates are left to the caller (the day's load finds them in SQL).
    Callers screen rows with `suspects` first: a clean row never pays for a pandas frame,
    and a process that meets none never imports pandas and pandera (0.4 s)."""
    rows = np.setdiff1d(np.arange(typed.num_rows), np.fromiter(reasons, np.int64))
    if not len(rows):
        return
    import pandas as pd
    import pandera.errors

    from cdr_workflow.schemas import schema_for

    candidates = typed.take(pa.array(rows)).to_pandas(types_mapper=pd.ArrowDtype)
    candidates.index = rows
    try:
        schema_for(layout.name).validate(candidates, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases.dropna(subset=["index"])
        first_row = _first_rows(candidates, layout.id_column)
        for row, column, check, context, value in cases[
            ["index", "column", "check", "schema_context", "failure_case"]
        ].itertuples(index=False):
            if check == "field_uniqueness" and not unique_ids:
                continue
            row_reasons = reasons.setdefault(int(row), [])
            reason = _reason(layout, candidates, int(row), column, check, context, value,
                             first_row, lines)
            if reason not in row_reasons:
                row_reasons.append(reason)


def suspects(typed: pa.Table, layout: Layout, unique_ids: bool = True) -> np.ndarray:
    """Rows that may break a rule of the layout's schema, by Arrow kernels: a value missing,
    outside its enumeration or pattern, negative or empty, a time before its earlier time, an
    id seen twice (with `unique_ids`). Never fewer rows than the schema would fail: the
    others pass it, and the schema decides on these."""
    flags = [pc.is_null(typed.column(f.column)) for f in layout.fields if f.required]
    for f in layout.fields:
        column = typed.column(f.column)
        if f.allowed is not None:
            flags.append(pc.invert(pc.is_in(column, pa.array(f.allowed, pa.string()))))
        if f.pattern is not None:
            flags.append(pc.invert(pc.match_substring_regex(column, f.pattern)))
        if f.non_negative:
            flags.append(pc.less(column, pa.scalar(0, f.type.arrow)))
        if f.type is FieldType.STRING and f.required:
            flags.append(pc.equal(pc.utf8_length(column), 0))
    for order in layout.time_orders:
        flags.append(pc.less(typed.column(order.later), typed.column(order.earlier)))
    if unique_ids:
        ids = typed.column(layout.id_column)
        counts = pc.value_counts(ids)
        repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        if len(repeated):
            flags.append(pc.is_in(ids, repeated))
    suspect = np.zeros(typed.num_rows, dtype=bool)
    for flag in flags:
        suspect |= flag.combine_chunks().fill_null(False).to_numpy(zero_copy_only=False)
    return suspect


def _first_rows(frame: pd.DataFrame, id_column: str) -> dict[object, int]:
    ids = frame[id_column].dropna()
    return {v: int(i) for i, v in ids[~ids.duplicated(keep="first")].items()}


def duplicate_in_file(value: object, first_line: int) -> str:
    return f"duplicate id, earlier in the same file: {value} is at line {first_line}"


def _reason(layout: Layout, frame: pd.DataFrame, row: int, column: str, check: str,
            context: str, value: object, first_row: dict[object, int],
            lines: np.ndarray) -> str:
    if check == "field_uniqueness":
        return duplicate_in_file(value, int(lines[first_row[value]]))
    if context == "DataFrameSchema":  # a rule across columns: quote the values it compared
        order = next((o for o in layout.time_orders if check.startswith(o.later)), None)
        if order is None:
            return check
        return (f"{check}: {shown(str(frame.at[row, order.later]))} < "
                f"{shown(str(frame.at[row, order.earlier]))}")
    name = layout.field(column).sinch_name
    if check == "not_nullable":
        return f"{name} is missing"
    return f"{name} {check}: {shown(value)}"

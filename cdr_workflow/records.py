"""Where the records of a block of CDR bytes begin and end.

A newline ends a record unless it is inside a quoted field, one that starts with `"` (a `"`
anywhere else is a literal character). Well-formed quoting is found by quote parity, with
numpy; blocks with stray or broken quotes are walked quote by quote.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

NEWLINE, QUOTE, DELIMITER_BYTE, CARRIAGE_RETURN = 0x0A, 0x22, 0x3B, 0x0D


class Records(NamedTuple):
    starts: np.ndarray  # offset of each non-empty record in the buffer
    ends: np.ndarray  # offset of its end (its newline, or the end of the buffer)
    lines: np.ndarray  # line number where it starts
    consumed: int  # bytes of the buffer that hold whole records
    newlines: int  # newlines within those bytes
    quoted_newlines: bool  # some record holds a line break inside quotes
    well_formed: bool  # every quote opens, closes or escapes: a lenient parser reads it right


def slice_records(records: Records, begin: int, end: int) -> Records:
    return records._replace(starts=records.starts[begin:end], ends=records.ends[begin:end],
                            lines=records.lines[begin:end])


def find_records(buf: bytes, final: bool, newlines_before: int, width: int | None = None
             ) -> Records:
    """Find the whole records in `buf`: a newline ends a record unless it is inside a quoted
    field (one that starts with `"`; a `"` anywhere else is a literal character)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(arr == NEWLINE)
    boundaries, pending, well_formed = newlines, len(buf), True
    if b'"' in buf:
        boundaries, pending, well_formed = _unquoted_newlines(buf, arr, newlines, final, width)
    ends = boundaries
    consumed = int(boundaries[-1]) + 1 if len(boundaries) else 0
    if final and consumed < len(buf):
        ends = np.append(boundaries, len(buf))
        consumed = len(buf)
    consumed = min(consumed, pending)
    ends = ends[ends < consumed] if consumed < len(buf) else ends
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else ends
    lengths = ends - starts
    trailing_cr = np.zeros(len(ends), dtype=bool)
    nonzero = lengths > 0
    trailing_cr[nonzero] = arr[ends[nonzero] - 1] == 0x0D
    keep = lengths - trailing_cr > 0
    starts, ends = starts[keep], ends[keep]
    lines = newlines_before + np.searchsorted(newlines, starts) + 1
    return Records(starts, ends, lines, consumed, int(np.searchsorted(newlines, consumed)),
                   len(boundaries) != len(newlines), well_formed)


def _unquoted_newlines(buf: bytes, arr: np.ndarray, newlines: np.ndarray, final: bool,
                       width: int | None) -> tuple[np.ndarray, int, bool]:
    """(the newlines outside quoted fields, the offset where an unfinished quoted field starts
    or len(buf)).

    Walks the quote characters only. A quoted field that runs over a line break but is followed
    by a line that is a complete record of `width` fields is a broken quote: its record ends at
    that line break, so it costs its own record and not the lines after it.
    """
    quotes = np.flatnonzero(arr == QUOTE)
    if not final and len(newlines):  # the record the block's end cuts is read with the next
        quotes = quotes[quotes < newlines[-1]]
    if _well_formed(arr, quotes):  # the common case: quote parity says the same, vectorised
        return newlines[(np.searchsorted(quotes, newlines) & 1) == 0], len(buf), True
    inside_from: list[int] = []
    inside_to: list[int] = []
    pending = len(buf)
    i, n = 0, len(quotes)
    while i < n:
        opening = int(quotes[i])
        if opening and buf[opening - 1] not in b";\n":  # mid-field: a literal quote
            i += 1
            continue
        i += 1
        while i < n and i + 1 < n and quotes[i + 1] == quotes[i] + 1:
            i += 2  # an escaped quote ""
        closing = int(quotes[i]) if i < n else len(buf)
        line_break = np.searchsorted(newlines, opening)
        if line_break < len(newlines) and newlines[line_break] < closing:
            first_break = int(newlines[line_break])
            if closing == len(buf) and not final and not _complete_line_after(
                    buf, newlines, line_break, width):
                pending = min(pending, _record_start(buf, opening))
                break
            if closing == len(buf) or _complete_line_after(buf, newlines, line_break, width):
                inside_from.append(opening)
                inside_to.append(first_break)  # the broken record ends at its line break
                i = int(np.searchsorted(quotes, first_break))
                continue
        inside_from.append(opening)
        inside_to.append(closing)
        i += 1
    if not inside_from:
        return newlines, pending, False
    starts, stops = np.array(inside_from), np.array(inside_to)
    span = np.searchsorted(starts, newlines, side="right") - 1
    inside = (span >= 0) & (newlines < stops[np.maximum(span, 0)])
    return newlines[~inside], pending, False


def well_formed(data: bytes) -> bool:
    """Whether the quotes of these whole records are all where well-formed quoting puts them
    (see `_well_formed`)."""
    if b'"' not in data:
        return True
    arr = np.frombuffer(data, dtype=np.uint8)
    return _well_formed(arr, np.flatnonzero(arr == QUOTE))


def _well_formed(arr: np.ndarray, quotes: np.ndarray) -> bool:
    """Whether every quote is where well-formed quoting puts it, so that plain parity finds
    the quoted fields: an even count; each quote at an even position opens a field (after `;`,
    a line break or at the start) or is the second of an escaped pair; each at an odd position
    closes its field (before `;`, a line break or the end) or is the first of an escaped pair.
    Broken quotes (two unclosed ones would pair up) fail this and are walked one by one."""
    if len(quotes) % 2:
        return False
    even, odd = quotes[0::2], quotes[1::2]
    before = arr[np.maximum(even - 1, 0)]
    opens = (even == 0) | (before == DELIMITER_BYTE) | (before == NEWLINE)
    escaped = np.zeros(len(even), dtype=bool)
    escaped[1:] = even[1:] - 1 == odd[:len(even) - 1]
    after = arr[np.minimum(odd + 1, len(arr) - 1)]
    closes = ((odd + 1 == len(arr)) | (after == DELIMITER_BYTE) | (after == NEWLINE)
              | (after == CARRIAGE_RETURN))
    escaping = np.zeros(len(odd), dtype=bool)
    escaping[:-1] = odd[:-1] + 1 == even[1:]
    return bool(np.all(opens | escaped) and np.all(closes | escaping))


def _complete_line_after(buf: bytes, newlines: np.ndarray, index: int, width: int | None
                         ) -> bool:
    """Whether the line after newline `index` is a whole record of `width` plain fields."""
    if width is None or index + 1 >= len(newlines):
        return False
    line = buf[int(newlines[index]) + 1:int(newlines[index + 1])].rstrip(b"\r")
    return b'"' not in line and line.count(b";") == width - 1


def _record_start(buf: bytes, offset: int) -> int:
    return buf.rfind(b"\n", 0, offset) + 1

"""Which Sinch layout a file has and where its columns are: from its header, or from its
field count and file name when it has none."""

from __future__ import annotations

import csv
import difflib
import functools
import re
from dataclasses import dataclass, field

import numpy as np

from cdr_workflow.errors import CdrFileError
from cdr_workflow.kinds import Kind, kind_of
from cdr_workflow.layouts import Layout

DELIMITER = ";"


@dataclass(frozen=True)
class SchemaDrift:
    """How a file's header differs from its layout: Sinch fields it lacks, columns the layout
    does not know, and which unknown column is likely a renamed field."""

    missing: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    renames: dict[str, str] = field(default_factory=dict)  # unknown column → likely field

    def __bool__(self) -> bool:
        return bool(self.missing or self.unknown)

    def describe(self) -> str:
        if not self:
            return "none"
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        if self.unknown:
            parts.append("unknown " + ", ".join(
                f"{u} (renamed {self.renames[u]}?)" if u in self.renames else u
                for u in self.unknown))
        return "; ".join(parts)


@dataclass(frozen=True)
class ColumnMap:
    """Where each layout column sits in the file, and which file columns are extra."""

    layout: Layout
    positions: dict[str, int]  # layout column → position in the record
    extras: dict[str, int]  # unknown header name → position
    width: int  # fields per record
    call_type: str | None  # the layout's name when the kind's table holds several layouts
    drift: SchemaDrift = SchemaDrift()


def spellings(names: set[str]) -> set[str]:
    """The exact spellings a header may use for these names: as written, lower, upper."""
    return {v for n in names for v in (n, n.lower(), n.upper())}


_NOT_IN_NAMES = re.compile(r"[^a-z0-9]")


def normalise(name: str) -> str:
    """A field name as written in any case or spelling: `CallId`, `call_id`, `CALL ID`."""
    return _NOT_IN_NAMES.sub("", name.lower())


def _split(record: bytes) -> list[str]:
    text = record.decode("utf-8", errors="replace").rstrip("\r")
    try:
        return next(csv.reader([text], delimiter=DELIMITER), [])
    except csv.Error:  # a mangled first line: its fields still tell header from data
        return text.split(DELIMITER)


def resolve_columns(
    first_record: bytes, source: str, kind: Kind, header: bool | None, line: int
) -> tuple[ColumnMap, int]:
    """Work out the layout and column positions from the first record. Returns (map, skip)."""
    fields = _split(first_record)
    names = [normalise(f) for f in fields]
    if header is None:
        header = _looks_like_header(fields, kind)
    if header:
        return _map_header(fields, names, source, kind, line, _named_layout(source, kind)), 1
    return _map_positional(len(fields), source, kind, line), 0


def _known_names(kind: Kind) -> frozenset[str]:
    return _known_names_of(kind.name)


@functools.cache  # asked of each record that begins like a field name (Sinch call ids that
def _known_names_of(kind_name: str) -> frozenset[str]:  # start `ca`: 4,000 in 1M; 0.6 s)
    layouts = kind_of(kind_name).layouts
    return frozenset({normalise(f.sinch_name) for lay in layouts for f in lay.fields}
                     | {normalise(f.column) for lay in layouts for f in lay.fields})


def _looks_like_header(fields: list[str], kind: Kind) -> bool:
    """Whether at least half the fields (and two) are field names, in any spelling. Fields
    are read only until that is settled: most records asked are data that begin like a field
    name, and half their fields tell (4,000 records in 1M Sinch ids: 0.053 s against 0.107)."""
    known = _known_names(kind)
    needed = max(2, len(fields) // 2)
    others_allowed = len(fields) - needed
    for name in fields:
        if normalise(name) in known:
            needed -= 1
            if not needed:
                return True
        else:
            others_allowed -= 1
            if others_allowed < 0:
                return False
    return False


def is_header(record: bytes, kind: Kind) -> bool:
    """Whether a record is a header line (met again mid-file in concatenated exports)."""
    return _looks_like_header(_split(record), kind)


def header_openings(kind: Kind) -> np.ndarray:
    """The first two bytes a header line can start with (a field name in any case, or a quote
    and its first letter), as 16-bit codes."""
    names = {f.sinch_name for lay in kind.layouts for f in lay.fields} | {
        f.column for lay in kind.layouts for f in lay.fields}
    variants = spellings(names)
    starts = {v.encode()[:2] for v in variants} | {b'"' + v.encode()[:1] for v in variants}
    return np.array(sorted(b[0] << 8 | b[1] for b in starts if len(b) == 2), dtype=np.uint16)


def _named_layout(source: str, kind: Kind) -> Layout | None:
    """The layout the file's name gives (`voice_phone_originated_…`), if it names one."""
    name = normalise(source.rsplit("/", 1)[-1])
    named = [lay for lay in kind.layouts if normalise(lay.name) in name]
    return named[0] if len(named) == 1 and len(kind.layouts) > 1 else None


def _map_header(fields: list[str], names: list[str], source: str, kind: Kind, line: int,
                named: Layout | None) -> ColumnMap:
    def score(layout: Layout) -> tuple[int, int]:
        wanted = _layout_names(layout)
        return (sum(n in wanted for n in names), -sum(w not in names for w in wanted))

    layout = named or max(kind.layouts, key=score)  # the name wins over a guess
    wanted = _layout_names(layout)
    positions = {wanted[n]: i for i, n in enumerate(names) if n in wanted}
    missing = [f.sinch_name for f in layout.fields if f.required and f.column not in positions]
    if missing:
        raise CdrFileError(
            source, f"header lacks required column(s) {', '.join(missing)} "
            f"for the {layout.name} layout", line)
    extras = {fields[i].strip(): i for i, n in enumerate(names) if n not in wanted}
    return ColumnMap(layout, positions, extras, len(fields), _call_type(kind, layout),
                     _drift(layout, positions, list(extras)))


def _drift(layout: Layout, positions: dict[str, int], unknown: list[str]) -> SchemaDrift:
    missing = [f.sinch_name for f in layout.fields if f.column not in positions]
    by_name = {normalise(m): m for m in missing}
    renames = {}
    for column in unknown:
        close = difflib.get_close_matches(normalise(column), list(by_name), n=1, cutoff=0.6)
        if close:
            renames[column] = by_name[close[0]]
    return SchemaDrift(tuple(missing), tuple(unknown), renames)


def _layout_names(layout: Layout) -> dict[str, str]:
    """Accepted header spellings (Sinch name or snake_case, any case) → column."""
    names = {normalise(f.sinch_name): f.column for f in layout.fields}
    names.update({normalise(f.column): f.column for f in layout.fields})
    return names


def _map_positional(width: int, source: str, kind: Kind, line: int) -> ColumnMap:
    candidates = [lay for lay in kind.layouts if len(lay.fields) == width]
    if len(candidates) > 1:  # app-app and SIP-terminated both have 10 fields
        named = [lay for lay in candidates if lay.name.replace("_", "") in normalise(source)]
        candidates = named or candidates
    if len(candidates) != 1:
        widths = sorted({len(lay.fields) for lay in kind.layouts})
        problem = (
            f"no header and {width} fields: cannot tell which {kind.name} layout this is "
            f"(expected {' or '.join(map(str, widths))} fields; name 10-field voice files "
            "with app_app or sip_terminated, or give them a header)"
        )
        raise CdrFileError(source, problem, line)
    layout = candidates[0]
    return ColumnMap(layout, {f.column: i for i, f in enumerate(layout.fields)}, {}, width,
                     _call_type(kind, layout))


def _call_type(kind: Kind, layout: Layout) -> str | None:
    return layout.name if kind.has_call_types else None

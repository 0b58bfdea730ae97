"""Property tests: generated CDRs written in any supported dialect read back to the same values;
a randomly corrupted file never loses a line."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdr_workflow.header import is_header
from cdr_workflow.kinds import VOICE
from cdr_workflow.layouts import LAYOUTS
from cdr_workflow.load import load_day
from cdr_workflow.reader import CdrFileError, read_cdr_file
from cdr_workflow.sources import DEFAULT_FILE_PATTERN
from cdr_workflow.sources.local import LocalSource
from cdr_workflow.warehouse import open_warehouse

LAYOUT = LAYOUTS["phone_terminated"]
FIELDS = [f.sinch_name for f in LAYOUT.fields]
UTC = dt.UTC

text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=";\""),
               min_size=1, max_size=12)
custom = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
                 max_size=30)
moments = st.datetimes(min_value=dt.datetime(2026, 11, 20), max_value=dt.datetime(2026, 11, 22),
                       timezones=st.just(UTC))
amounts = st.decimals(min_value=0, max_value=10_000, places=6)


@st.composite
def calls(draw) -> dict:
    call_time = draw(moments)
    answered = draw(st.booleans())
    return {
        # ids lose surrounding whitespace by the dialect rules: generate them trimmed
        "call_id": draw(text.map(str.strip).filter(bool)),
        "user_space_id": draw(st.integers(0, 2**40)),
        "call_time": call_time, "result": "ANSWERED" if answered else draw(
            st.sampled_from(["BUSY", "NOANSWER", "FAILED"])),
        "reason": draw(st.sampled_from(LAYOUT.field("reason").allowed)),
        "duration": draw(st.integers(0, 10**6)),
        "answer_time": call_time + dt.timedelta(seconds=draw(st.integers(0, 60)))
        if answered else None,
        "from_endpoint": draw(text), "to_endpoint": draw(text), "amount": draw(amounts),
        "currency": draw(st.sampled_from(["EUR", "USD", "SEK"])),
        "custom": draw(custom) or None, "application_key": draw(text), "user_id": draw(text),
        "to_country_id": draw(st.sampled_from(["SE", "DE", "US"])),
    }


@st.composite
def dialects(draw) -> dict:
    return {"header": draw(st.booleans()), "newline": draw(st.sampled_from(["\n", "\r\n"])),
            "bom": draw(st.booleans()), "gzip": draw(st.booleans()),
            "quote_all": draw(st.booleans()), "decimal_comma": draw(st.booleans()),
            "time": draw(st.sampled_from(["Z", "+00:00", "+02:00", "space", "7digits"]))}


def render_time(value: dt.datetime | None, style: str) -> str:
    if value is None:
        return ""
    if style == "space":
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if style == "+02:00":
        return value.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    if style == "7digits":
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + style


def render(calls_: list[dict], d: dict) -> bytes:
    def field(value: object, name: str) -> str:
        if name in ("call_time", "answer_time"):
            out = render_time(value, d["time"])
        elif name == "amount":
            out = str(value).replace(".", ",") if d["decimal_comma"] else str(value)
        else:
            out = "" if value is None else str(value)
        if d["quote_all"] or any(c in out for c in ';"\n\r'):
            out = '"' + out.replace('"', '""') + '"'
        return out

    lines = [";".join(FIELDS)] if d["header"] else []
    lines += [";".join(field(c[f.column], f.column) for f in LAYOUT.fields) for c in calls_]
    data = ("\ufeff" if d["bom"] else "") + d["newline"].join(lines) + d["newline"]
    raw = data.encode()
    return gzip.compress(raw) if d["gzip"] else raw


def expected(call: dict, d: dict) -> dict:
    out = dict(call)
    if d["time"] == "space":  # this form has no fractional seconds
        for name in ("call_time", "answer_time"):
            if out[name] is not None:
                out[name] = out[name].replace(microsecond=0)
    out["amount"] = Decimal(call["amount"]).quantize(Decimal("0.000001"))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls(), min_size=1, max_size=8, unique_by=lambda c: c["call_id"]), dialects())
def test_any_dialect_reads_back_the_same_values(calls_, dialect):
    data = render(calls_, dialect)
    name = "voice_phone_terminated_2026-11-21.csv"
    chunks = list(read_cdr_file(io.BytesIO(data), name, "voice",
                                header=dialect["header"]))
    rejects = [r for c in chunks for r in c.rejects]
    assert rejects == []
    rows = [r for c in chunks for r in c.rows.to_pylist()]
    got = [{k: r[k] for k in calls_[0]} for r in rows]
    assert got == [expected(c, dialect) for c in calls_]


def corrupt(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, length, replacement in edits:
        at = position % (len(data) + 1)
        data = data[:at] + replacement + data[at + length:]
    return data


edit = st.tuples(st.integers(0, 10**6), st.integers(0, 5),
                 st.sampled_from([b"", b";", b'"', b"\n", b"\r\n", b"\x00", b"\xff\xfe", b"x",
                                  b"-1", b",", b"N/A", b'""']))


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(calls(), min_size=1, max_size=10, unique_by=lambda c: c["call_id"]),
       dialects().filter(lambda d: not d["gzip"]), st.lists(edit, min_size=1, max_size=6))
def test_a_corrupted_file_never_loses_a_line(warehouse_url, calls_, dialect, edits):
    data = corrupt(render(calls_, dialect), edits)
    with tempfile.TemporaryDirectory() as tmp:
        drop = Path(tmp) / "drop"
        drop.mkdir()
        (drop / "voice_phone_terminated_2026-11-21.csv").write_bytes(data)
        warehouse = open_warehouse(f"duckdb:///{tmp}/warehouse.duckdb")
        source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
        try:
            result = load_day(source, warehouse, VOICE, dt.date(2026, 11, 21), "run")
        except CdrFileError as exc:  # the whole file refused, naming it: nothing half-loaded
            assert "voice_phone_terminated_2026-11-21.csv" in str(exc)
            assert warehouse.query("SELECT COUNT(*) FROM voice_cdrs") == [(0,)]
            return
        ((loaded,),) = warehouse.query("SELECT COUNT(*) FROM voice_cdrs")
        ((rejected,),) = warehouse.query("SELECT COUNT(*) FROM cdr_rejects")
        assert result.rows_read == loaded + rejected
        physical = data.count(b"\n") + 1
        lines = [n for (n,) in warehouse.query(
            "SELECT source_line FROM voice_cdrs UNION ALL SELECT source_line FROM cdr_rejects")]
        assert len(lines) == len(set(lines))
        assert all(1 <= n <= physical for n in lines)


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(calls(), min_size=1, max_size=10, unique_by=lambda c: c["call_id"]),
       dialects())
def test_the_warehouse_holds_exactly_the_money_generated(warehouse_url, calls_, dialect):
    """The money in the table equals the generated values summed in Python, and the text
    totals DuckDB reads on its own (the amounts_match_file reference) agree with both."""
    with tempfile.TemporaryDirectory() as tmp:
        drop = Path(tmp) / "drop"
        drop.mkdir()
        (drop / "voice_phone_terminated_2026-11-21.csv").write_bytes(render(calls_, dialect))
        warehouse = open_warehouse(f"duckdb:///{tmp}/warehouse.duckdb")
        source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
        result = load_day(source, warehouse, VOICE, dt.date(2026, 11, 21), "run")
        generated: dict[tuple, Decimal] = {}
        for c in calls_:
            key = (c["currency"], c["application_key"])
            generated[key] = generated.get(key, Decimal(0)) + Decimal(c["amount"])
        stored = {(cur, app): Decimal(str(total)) for cur, app, total in warehouse.query(
            "SELECT currency, application_key, SUM(amount) FROM voice_cdrs GROUP BY 1, 2")}
        assert stored == generated
        text = {k: v for f in result.files for k, v in f.amount_totals.items()}
        assert text == generated  # without a header DuckDB knows the layout by its width


# the forms of a time the format documents, written here independently of the reader's checks
TIME_FORM = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}"  # date, time
                       r"(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)?")  # fraction, zone


@st.composite
def edited_times(draw) -> str:
    """A time as Sinch writes it (any digits of a second), perhaps with a character or two
    changed: mostly well-formed, as a day's file is."""
    moment = draw(moments)
    digits = draw(st.integers(0, 9))
    value = (moment.strftime(f"%Y-%m-%d{draw(st.sampled_from('T '))}%H:%M:%S")
             + (f".{moment.microsecond:06d}000"[:digits + 1] if digits else "") + "Z")
    chars = list(value)
    for at, char in draw(st.lists(st.tuples(st.integers(0, len(chars) - 1),
                                            st.sampled_from("0123456789:-.TZ+ x")), max_size=2)):
        chars[at] = char
    return "".join(chars)


@settings(max_examples=80, deadline=None)
@given(st.lists(edited_times(), min_size=1, max_size=30))
def test_a_call_time_is_rejected_as_malformed_exactly_when_it_is_not_a_documented_form(times):
    header = ";".join(FIELDS)
    rows = [";".join({"CallId": f"c{i}", "UserSpaceId": "1", "CallTime": value,
                      "Result": "NOANSWER", "Reason": "N/A", "Duration": "0", "AnswerTime": "",
                      "From": "+4670", "To": "+4671", "Amount": "0", "Currency": "EUR",
                      "Custom": "", "ApplicationKey": "a", "UserId": "u", "ToCountryId": "SE",
                      }[name] for name in FIELDS) for i, value in enumerate(times)]
    data = "\n".join([header, *rows, ""]).encode()
    chunks = list(read_cdr_file(io.BytesIO(data), "voice_phone_terminated.csv", "voice"))
    malformed = {r.line - 2 for c in chunks for r in c.rejects
                 if any(reason.startswith("CallTime is not an ISO 8601") for reason in r.reasons)}
    assert malformed == {i for i, value in enumerate(times)
                         if not TIME_FORM.fullmatch(value.strip())}


NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyz0123456789")
VOICE_FIELD_NAMES = sorted({n for lay in VOICE.layouts for f in lay.fields
                            for n in (f.sinch_name, f.column)})
VOICE_NAMES = {"".join(c for c in n.lower() if c in NAME_CHARACTERS) for n in VOICE_FIELD_NAMES}


@st.composite
def spelled_names(draw) -> str:
    """A voice field name as a header may write it: any case, with `_` or ` ` between."""
    name = draw(st.sampled_from(VOICE_FIELD_NAMES))
    return draw(st.sampled_from([name, name.lower(), name.upper(), " " + name + " ",
                                 "_".join(name), name.replace("_", " ")]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(spelled_names(), text, st.just("")), max_size=20))
def test_a_record_is_a_header_exactly_when_half_its_fields_and_two_are_field_names(fields):
    names = sum("".join(c for c in f.lower() if c in NAME_CHARACTERS) in VOICE_NAMES
                for f in fields)
    record = ";".join(fields).encode()
    assert is_header(record, VOICE) == (names >= max(2, len(fields) // 2))


# the amounts the format documents, written here independently of the reader's checks: up to
# 12 digits, a point (or a comma) and up to 6 more
AMOUNT_FORM = re.compile(r"[+-]?[0-9]{1,12}([.][0-9]{1,6})?")


@st.composite
def amounts_near_the_form(draw) -> str:
    """Near the form's edges: a sign or junk, up to 14 digits, up to two points (or commas)
    with up to 8 digits after each, junk."""
    def digits() -> str:
        return "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=draw(
            st.integers(0, 14)), max_size=14)))
    parts = [draw(st.sampled_from(["", "", "+", "-", " ", "x", ".", ","])), digits()]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(st.sampled_from(".,")), digits()[:draw(st.integers(0, 8))]]
    return "".join(parts) + draw(st.sampled_from(["", "", " ", "x"]))


@settings(max_examples=80, deadline=None)
@given(st.lists(amounts_near_the_form(), min_size=1, max_size=30))
def test_an_amount_is_rejected_as_malformed_exactly_when_it_is_not_a_documented_form(amounts_):
    row = {"UserSpaceId": "1", "CallTime": "2026-11-21T10:00:00Z", "Result": "NOANSWER",
           "Reason": "N/A", "Duration": "0", "AnswerTime": "", "From": "+4670", "To": "+4671",
           "Currency": "EUR", "Custom": "", "ApplicationKey": "a", "UserId": "u",
           "ToCountryId": "SE"}
    rows = [";".join({**row, "CallId": f"c{i}", "Amount": value}[name] for name in FIELDS)
            for i, value in enumerate(amounts_)]
    data = "\n".join([";".join(FIELDS), *rows, ""]).encode()
    chunks = list(read_cdr_file(io.BytesIO(data), "voice_phone_terminated.csv", "voice"))
    malformed = {r.line - 2 for c in chunks for r in c.rejects
                 if any(reason.startswith("Amount is not a decimal") for reason in r.reasons)}
    assert malformed == {i for i, value in enumerate(amounts_) if value.strip() and
                         not AMOUNT_FORM.fullmatch(value.strip().replace(",", "."))}

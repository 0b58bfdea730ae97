"""Each Sinch layout's rules, through the reader, as a file would meet them."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from helpers import rows_and_rejects
from hypothesis import example, given
from hypothesis import strategies as st

from cdr_workflow import values
from cdr_workflow.demo import verification_row, voice_row
from cdr_workflow.layouts import LAYOUTS, VERIFICATION, FieldType
from cdr_workflow.schemas import schema_for

DAY = dt.date(2026, 11, 21)


def good_row(layout_name: str) -> dict[str, str]:
    rng = random.Random(3)
    layout = LAYOUTS[layout_name]
    if layout is VERIFICATION:
        row = verification_row(rng, DAY, 1)
        row.update(Result="SUCCESSFUL", Reason="N/A")
        return row
    row = voice_row(rng, layout, DAY, 1)
    row["Result"] = "ANSWERED"
    if "AnswerTime" in row:
        row["AnswerTime"] = "2026-11-21T10:00:05Z"
    row["CallTime"] = "2026-11-21T10:00:00Z"
    return row


def check(layout_name: str, **overrides: str) -> tuple[list, list]:
    layout = LAYOUTS[layout_name]
    row = {**good_row(layout_name), **overrides}
    header = ";".join(f.sinch_name for f in layout.fields)
    body = ";".join(row[f.sinch_name] for f in layout.fields)
    kind = layout.kind
    return rows_and_rejects(f"{header}\n{body}\n", kind=kind, name=f"{kind}_2026-11-21.csv")


ALL = list(LAYOUTS)
VOICE = [n for n in ALL if n != "verification"]
WITH_AMOUNT = [n for n in ALL if LAYOUTS[n].amount_column]


@pytest.mark.parametrize("layout", ALL)
def test_a_good_row_passes(layout):
    rows, rejects = check(layout)
    assert rejects == [] and len(rows) == 1


@pytest.mark.parametrize("layout", ALL)
def test_result_outside_the_documented_enum_is_rejected(layout):
    _, rejects = check(layout, Result="MAYBE")
    assert rejects[0].reasons == (
        f"Result is not one of {', '.join(LAYOUTS[layout].field('result').allowed)}: 'MAYBE'",)


@pytest.mark.parametrize("layout", ["phone_terminated", "phone_originated", "app_app"])
def test_reason_outside_the_documented_enum_is_rejected(layout):
    _, rejects = check(layout, Reason="SOLAR_FLARE")
    assert rejects[0].reasons[0].startswith("Reason is not one of N/A")


def test_sip_reason_is_free_text_as_sinch_documents_no_list():
    rows, rejects = check("sip_terminated", Reason="487 Request Terminated")
    assert rejects == [] and rows[0]["reason"] == "487 Request Terminated"


def test_verification_method_enum():
    _, rejects = check("verification", Method="pigeon")
    assert rejects[0].reasons == ("Method is not one of flashCall, SMS, callout: 'pigeon'",)


@pytest.mark.parametrize("layout", ALL)
def test_empty_id_is_rejected(layout):
    id_field = "VerificationId" if layout == "verification" else "CallId"
    _, rejects = check(layout, **{id_field: ""})
    assert rejects[0].reasons == (f"{id_field} is missing",)


@pytest.mark.parametrize("layout", VOICE)
def test_negative_duration_is_rejected(layout):
    _, rejects = check(layout, Duration="-1")
    assert rejects[0].reasons == ("Duration is negative: -1",)


@pytest.mark.parametrize("layout", WITH_AMOUNT)
def test_negative_amount_is_rejected(layout):
    _, rejects = check(layout, Amount="-0.01")
    assert rejects[0].reasons == ("Amount is negative: -0.010000",)


@pytest.mark.parametrize("layout", WITH_AMOUNT)
def test_currency_must_be_three_capitals(layout):
    _, rejects = check(layout, Currency="eur")
    assert rejects[0].reasons == ("Currency is not a 3-letter ISO 4217 code: 'eur'",)


@pytest.mark.parametrize("layout,field", [("verification", "Country"),
                                          ("phone_terminated", "ToCountryId")])
def test_country_must_be_two_capitals(layout, field):
    _, rejects = check(layout, **{field: "Sweden"})
    assert rejects[0].reasons == (f"{field} is not a 2-letter ISO 3166 code: 'Sweden'",)


def test_answer_time_before_call_time_is_rejected():
    _, rejects = check("phone_terminated", AnswerTime="2026-11-21T09:59:59Z")
    assert rejects[0].reasons == (
        "answer_time is before call_time: '2026-11-21 09:59:59+00:00' < "
        "'2026-11-21 10:00:00+00:00'",)


def test_end_before_start_is_rejected():
    _, rejects = check("verification", StartTimestamp="2026-11-21T10:00:00Z",
                       EndTimestamp="2026-11-21T09:00:00Z")
    assert rejects[0].reasons == (
        "end_timestamp is before start_timestamp: '2026-11-21 09:00:00+00:00' < "
        "'2026-11-21 10:00:00+00:00'",)


@pytest.mark.parametrize("layout", ALL)
def test_ids_unique_within_the_file_later_copy_rejected(layout):
    field = LAYOUTS[layout]
    row = good_row(layout)
    header = ";".join(f.sinch_name for f in field.fields)
    body = ";".join(row[f.sinch_name] for f in field.fields)
    rows, rejects = rows_and_rejects(f"{header}\n{body}\n{body}\n", kind=field.kind,
                                     name=f"{field.kind}_2026-11-21.csv")
    assert len(rows) == 1 and rows[0]["source_line"] == 2
    assert rejects[0].line == 3
    assert rejects[0].reasons[0].startswith("duplicate id, earlier in the same file: ")
    assert rejects[0].reasons[0].endswith(" is at line 2")


@pytest.mark.parametrize("layout", ALL)
def test_each_schema_is_derived_from_its_layout(layout):
    schema = schema_for(layout)
    assert list(schema.columns) == LAYOUTS[layout].columns
    assert schema.columns[LAYOUTS[layout].id_column].unique


BREAKS = [  # one row per rule the schema checks, in every layout where the field exists
    {"Result": "MAYBE"}, {"Method": "pigeon"}, {"Reason": "BORED"}, {"Currency": "euro"},
    {"Country": "Sweden"}, {"ToCountryId": "se"}, {"Duration": "-1"}, {"Amount": "-0.5"},
    {"CallId": ""}, {"VerificationId": " "}, {"Result": ""},
    {"AnswerTime": "2026-11-21T09:59:59Z"}, {"EndTimestamp": "2026-11-20T00:00:00Z"},
]


@pytest.mark.parametrize("layout", ALL)
def test_the_schema_runs_on_every_row_that_breaks_a_rule(layout, monkeypatch):
    """Rows Arrow's kernels do not suspect skip the pandas schema: on rows breaking each
    rule, the reasons must be the same as when the schema sees every row."""
    from cdr_workflow import reader

    fields = {f.sinch_name for f in LAYOUTS[layout].fields}
    rows = [{**good_row(layout), **b} for b in BREAKS if set(b) <= fields]
    copies = [{**good_row(layout)} for _ in range(3)]  # the same id three times
    header = ";".join(f.sinch_name for f in LAYOUTS[layout].fields)
    body = "".join(";".join(r[f.sinch_name] for f in LAYOUTS[layout].fields) + "\n"
                   for r in [*copies, *rows])
    text, kind = f"{header}\n{body}", LAYOUTS[layout].kind
    screened = rows_and_rejects(text, kind=kind, name=f"{kind}_2026-11-21.csv")
    monkeypatch.setattr(reader, "suspects", lambda typed, *_: np.ones(typed.num_rows, bool))
    everything = rows_and_rejects(text, kind=kind, name=f"{kind}_2026-11-21.csv")
    assert screened == everything
    assert len(screened[1]) >= len(rows) + 2  # each break and two later copies are rejects


digits = st.one_of(st.none(), st.text("0123456789", min_size=1, max_size=22))
integer_texts = st.one_of(  # columns of plain digits (the shortcut's), and mixed ones
    st.lists(digits, max_size=20),
    st.lists(st.one_of(digits, st.from_regex(r"\A[+-]?[0-9]{1,20}\Z"), st.text(max_size=8)),
             max_size=20))


@given(integer_texts)
def test_the_integer_shortcut_judges_as_the_pattern_does(texts):
    """A column of plain digits skips the integer pattern: it must reject what it would."""
    column = pa.array(texts, pa.string())
    expected = pc.invert(pc.match_substring_regex(column, values._INTEGER))
    assert (values._malformed(column, FieldType.INTEGER).to_pylist()
            == expected.fill_null(False).to_pylist())


plain_times = st.from_regex(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z\Z")
near_times = st.from_regex(  # the common sizes, a character off here and there
    r"\A[0-9/a]{4}[-:][0-9/]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}[:.][0-9]{2}"
    r"([.,][0-9a]{1,10})?[Z+]\Z")
time_texts = st.one_of(  # columns the shortcut may take, and mixed ones
    st.lists(st.one_of(st.none(), plain_times, near_times), max_size=4),
    st.lists(st.one_of(st.none(), plain_times, near_times, st.text(min_size=18, max_size=22)),
             max_size=20))


@given(time_texts)
@example(["2026-11-21 10:00:00Z", None])
@example(["2026-11-21t10:00:00Z"])
@example(["2026/11-21T10:00:00Z"])
@example(["2026-11-21T10:00.00Z"])
@example(["2026-11-21T10:00:00+"])
@example(["2026-11-21T10:00:0a"])
@example(["2026-11-21T10:00:00.123Z", "2026-11-21T10:00:00.456Z"])
@example(["2026-11-21T10:00:00.123Z", "2026-11-21T10:00:00Z"])
@example(["2026-11-21T10:00:00.1234567890Z"])
@example(["2026-11-21T10:00:00,123Z"])
@example(["2026-11-21T10:00:00.12aZ"])
def test_the_time_shortcut_judges_as_the_pattern_does(texts):
    """Times in the common form skip the time pattern: it must reject what it would, also
    in a slice of a column (its bytes read from an offset)."""
    whole = pa.array(texts, pa.string())
    for column in (whole, whole.slice(1)):
        found = values._malformed(column, FieldType.TIMESTAMP).fill_null(False).to_pylist()
        expected = pc.invert(pc.match_substring_regex(column, values._TIMESTAMP))
        assert found == expected.fill_null(False).to_pylist()


def test_times_of_the_common_form_skip_the_pattern():
    """With milliseconds too (Sinch's own form), at the column's most frequent size; the
    others (a bad line's) take the pattern."""
    times = pa.array(["2026-11-21T10:00:00.123Z", None, "2026-11-21 23:59:59.999Z",
                      "2026-11-21T10:00:00Z", "yesterday", "2026-11-21T10:00:00.12aZ"])
    assert values._plain_times(times).tolist() == [True, False, True, False, False, False]
    assert values._plain_times(times.slice(2)).tolist() == [True, False, False, False]

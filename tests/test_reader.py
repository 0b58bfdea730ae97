"""The reader on every dialect point Sinch files may take."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import os
import subprocess
import sys
from decimal import Decimal

import pyarrow as pa
import pytest
from helpers import PT_HEADER, line, pt_row, read_text, rows_and_rejects

from cdr_workflow.layouts import LAYOUTS
from cdr_workflow.reader import CdrFileError

UTC = dt.UTC


def test_header_row_maps_columns_and_types_values_exactly():
    rows, rejects = rows_and_rejects(f"{PT_HEADER}\n{line(pt_row())}\n")
    assert rejects == []
    (row,) = rows
    assert row["call_id"] == "c1"
    assert row["call_type"] == "phone_terminated"
    assert row["amount"] == Decimal("0.012500")
    assert row["call_time"] == dt.datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert row["duration"] == 30
    assert row["source_line"] == 2


def test_columns_matched_by_name_in_any_order():
    names = PT_HEADER.split(";")[::-1]
    values = line(pt_row()).split(";")[::-1]
    rows, rejects = rows_and_rejects(";".join(names) + "\n" + ";".join(values) + "\n")
    assert rejects == []
    assert rows[0]["call_id"] == "c1" and rows[0]["to_country_id"] == "SE"


def test_no_header_uses_sinch_field_order():
    rows, _ = rows_and_rejects(line(pt_row()) + "\n" + line(pt_row("c2")) + "\n")
    assert [r["call_id"] for r in rows] == ["c1", "c2"]
    assert rows[0]["source_line"] == 1


@pytest.mark.parametrize("layout", ["phone_terminated", "phone_originated", "app_app",
                                    "sip_terminated"])
def test_voice_call_type_comes_from_the_header(layout):
    fields = LAYOUTS[layout].fields
    header = ";".join(f.sinch_name for f in fields)
    values = {**pt_row(), "FromUserId": "u1", "ToUserId": "u2"}
    rows, rejects = rows_and_rejects(f"{header}\n{line(values, layout)}\n")
    assert rejects == []
    assert rows[0]["call_type"] == layout


@pytest.mark.parametrize("name,layout", [("voice_app_app_2026-11-21.csv", "app_app"),
                                         ("voice_sip_terminated_2026-11-21.csv", "sip_terminated")])
def test_headerless_ten_field_voice_files_are_told_apart_by_name(name, layout):
    values = {**pt_row(), "FromUserId": "u1", "ToUserId": "u2"}
    rows, _ = rows_and_rejects(line(values, layout) + "\n", name=name)
    assert rows[0]["call_type"] == layout


def test_headerless_ten_field_file_without_a_hint_is_a_clear_file_error():
    values = {**pt_row(), "FromUserId": "u1", "ToUserId": "u2"}
    with pytest.raises(CdrFileError, match="voice_2026-11-21.csv, line 1: no header and 10"):
        read_text(line(values, "app_app") + "\n")


@pytest.mark.parametrize("text,expected", [
    ("2026-11-21T10:00:00Z", dt.datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
    ("2026-11-21T12:00:00+02:00", dt.datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
    ("2026-11-21T05:30:00-0430", dt.datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
    ("2026-11-21T10:00:00.5Z", dt.datetime(2026, 11, 21, 10, 0, 0, 500000, tzinfo=UTC)),
    ("2026-11-21T10:00:00.1234567Z", dt.datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-21 10:00:00", dt.datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
    ("2026-11-21T10:00:00", dt.datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
])
def test_timestamp_forms(text, expected):
    rows, rejects = rows_and_rejects(
        f"{PT_HEADER}\n{line(pt_row(CallTime=text, AnswerTime=''))}\n")
    assert rejects == []
    assert rows[0]["call_time"] == expected


@pytest.mark.parametrize("bad", ["21/11/2026 10:00", "2026-13-21T10:00:00Z", "yesterday"])
def test_bad_timestamps_are_rejected_with_the_value(bad):
    _, rejects = rows_and_rejects(f"{PT_HEADER}\n{line(pt_row(CallTime=bad))}\n")
    (reject,) = rejects
    assert reject.line == 2
    assert any(r.startswith("CallTime is not") and bad in r for r in reject.reasons)


def test_gzip_is_recognised_by_content():
    data = gzip.compress(f"{PT_HEADER}\n{line(pt_row())}\n".encode())
    rows, _ = rows_and_rejects(data, name="voice_2026-11-21.csv.gz")
    assert rows[0]["call_id"] == "c1"


def test_corrupt_gzip_is_a_file_error():
    data = gzip.compress(f"{PT_HEADER}\n{line(pt_row())}\n".encode() * 50)[:60]
    with pytest.raises(CdrFileError, match="cannot decompress"):
        read_text(data, name="voice_2026-11-21.csv.gz")


def test_utf8_bom_and_crlf():
    data = b"\xef\xbb\xbf" + f"{PT_HEADER}\r\n{line(pt_row())}\r\n".encode()
    rows, rejects = rows_and_rejects(data)
    assert rejects == []
    assert rows[0]["call_id"] == "c1" and rows[0]["to_country_id"] == "SE"


def test_quoted_semicolons_and_line_breaks_keep_line_numbers():
    custom = '"a;b\r\nc ""quoted"""'
    text = f"{PT_HEADER}\n{line(pt_row('c1', Custom=custom))}\n{line(pt_row('c2'))}\n"
    rows, _ = rows_and_rejects(text)
    assert rows[0]["custom"] == 'a;b\r\nc "quoted"'
    assert [r["source_line"] for r in rows] == [2, 4]


def test_na_is_a_value_and_empty_is_null():
    rows, _ = rows_and_rejects(f"{PT_HEADER}\n{line(pt_row(Reason='N/A', Custom=''))}\n")
    assert rows[0]["reason"] == "N/A"
    assert rows[0]["custom"] is None


def test_surrounding_whitespace_is_trimmed_from_coded_fields_and_kept_in_free_text():
    spaced = pt_row("\u00a0c1 ", Result="ANSWERED\t", Currency="\u3000EUR", Duration=" 30",
                    Reason="   ", Custom=" free text ")
    plain = pt_row("c2", Reason="   ")  # only the blank value needs trimming in this row
    rows, rejects = rows_and_rejects(f"{PT_HEADER}\n{line(spaced)}\n{line(plain)}\n")
    assert not rejects
    first, second = rows
    assert (first["call_id"], first["result"], first["currency"], first["duration"]) == (
        "c1", "ANSWERED", "EUR", 30)
    assert first["reason"] is None and second["reason"] is None  # blank is empty: null
    assert first["custom"] == " free text "


def test_decimal_comma_is_tolerated_and_amounts_stay_exact():
    rows, _ = rows_and_rejects(f"{PT_HEADER}\n{line(pt_row(Amount='0,123456'))}\n")
    assert rows[0]["amount"] == Decimal("0.123456")


def test_a_rejected_amount_is_quoted_as_the_file_has_it_not_as_read():
    _, rejects = rows_and_rejects(f"{PT_HEADER}\n{line(pt_row(Amount='1,234.50'))}\n")
    assert rejects[0].reasons == ("Amount is not a decimal with at most 6 decimal places: "
                                  "'1,234.50'",)


def test_more_decimal_places_than_kept_is_a_reject_not_a_rounding():
    _, rejects = rows_and_rejects(f"{PT_HEADER}\n{line(pt_row(Amount='0.1234567'))}\n")
    assert "Amount is not a decimal with at most 6 decimal places" in rejects[0].reasons[0]


def test_unknown_columns_are_kept_as_json():
    text = f"{PT_HEADER};Region\n{line(pt_row())};north\n"
    rows, _ = rows_and_rejects(text)
    assert rows[0]["extra_fields"] == '{"Region": "north"}'


def test_wrong_field_count_rejects_that_line_only():
    text = f"{PT_HEADER}\n{line(pt_row('c1'))}\nc2;1;2\n{line(pt_row('c3'))}\n"
    rows, rejects = rows_and_rejects(text)
    assert [r["call_id"] for r in rows] == ["c1", "c3"]
    assert rejects[0].line == 3
    assert rejects[0].raw_line == "c2;1;2"
    assert rejects[0].reasons == ("expected 15 fields, found 3",)


def test_lines_cut_short_not_utf8_or_with_a_stray_quote_in_a_long_block_cost_only_themselves():
    # enough records that the block is parsed in parts around its bad lines
    lines = [line(pt_row(f"c{n}", Custom='"note=""a;b"" x"')).encode() for n in range(500)]
    cut = {3, 250, 251, 499}
    for n in cut:
        lines[n] = lines[n].rsplit(b";", 1)[0]
    lines[100] = lines[100].replace(b"c100", b"c\xff100")
    lines[400] = line(pt_row("c400", Custom='5" screen')).encode()  # a quote mid-field: a letter
    rows, rejects = rows_and_rejects(f"{PT_HEADER}\n".encode() + b"\n".join(lines) + b"\n")
    kept = [n for n in range(500) if n not in cut | {100}]
    assert [r["call_id"] for r in rows] == [f"c{n}" for n in kept]
    assert [r["source_line"] for r in rows] == [n + 2 for n in kept]
    assert {r["call_id"]: r["custom"] for r in rows if r["custom"] != 'note="a;b" x'} == {
        "c400": '5" screen'}
    assert {r.line: r.reasons[0] for r in rejects} == {
        **{n + 2: "expected 15 fields, found 14" for n in cut},
        102: "not valid UTF-8 (byte 0xff at column 2)"}


@pytest.mark.parametrize("stray_quote", [False, True])
def test_lines_with_a_wrong_field_count_are_screened_as_read_one_by_one(stray_quote):
    """A block that does not parse whole has its lines with another number of fields
    rejected at once (a file of trailing delimiters costs seconds, not minutes), and lines
    with a carriage return inside are read one by one: with the same verdicts, reasons, text
    and rows as the record-by-record reading, quoted delimiters, text beyond ASCII and bytes
    that are not UTF-8 included."""
    from cdr_workflow.reader import _parse_block, _parse_slow
    from cdr_workflow.records import find_records

    quoted = '"note=""a;b"""'
    kinds = [line(pt_row("good")), line(pt_row("quoted", Custom=quoted)),
             line(pt_row("trailing")) + ";", line(pt_row("trailing-quoted", Custom=quoted)) + ";",
             line(pt_row("short")).rsplit(";", 1)[0], line(pt_row("crlf")) + ";x\r",
             line(pt_row("accent", Custom="café")) + ";", line(pt_row("empty-last")) + ";;",
             line(pt_row("bare-cr", Custom="a\rb")), line(pt_row("quoted-cr", Custom='"a\rb"')),
             line(pt_row("bare-cr-trailing", Custom="a\rb")) + ";"]
    records = [text.encode() for text in kinds * 20]
    records.append(line(pt_row("latin", Custom="caf\xe9")).encode("latin-1") + b";")
    if stray_quote:
        records.append(line(pt_row("stray", Custom='5" screen')).encode() + b";")
    data = b"\n".join(records) + b"\n"
    found = find_records(data, True, 0, 15)
    args = (data, found.starts, found.ends, found.lines, 15)

    screened, kept, rejects = _parse_block(data, found, 15)
    one_by_one, kept_one_by_one, rejects_one_by_one = _parse_slow(*args)
    assert screened.to_pylist() == one_by_one.to_pylist()
    assert kept.tolist() == kept_one_by_one.tolist()
    assert rejects == rejects_one_by_one
    assert sum(kept) == 60 and len(rejects) == len(records) - 60  # good, quoted, quoted-cr


def test_bytes_that_are_not_utf8_reject_the_line():
    bad = line(pt_row("c2", Custom="caf\xe9")).encode("latin-1")
    data = f"{PT_HEADER}\n{line(pt_row('c1'))}\n".encode() + bad + b"\n"
    rows, rejects = rows_and_rejects(data)
    assert [r["call_id"] for r in rows] == ["c1"]
    assert rejects[0].line == 3 and "not valid UTF-8" in rejects[0].reasons[0]


def test_missing_required_header_column_is_a_file_error():
    header = PT_HEADER.replace("CallId;", "")
    with pytest.raises(CdrFileError, match="lacks required column"):
        read_text(f"{header}\n")


def test_streams_in_blocks_with_line_numbers_across_block_boundaries():
    rows_in = [line(pt_row(f"c{i}", Custom='"x\ny"' if i % 7 == 0 else "")) for i in range(500)]
    text = PT_HEADER + "\n" + "\n".join(rows_in) + "\n"
    chunks = read_text(text, block_bytes=4096)
    assert len(chunks) > 10
    assert all(isinstance(c.rows, pa.Table) for c in chunks)
    rows = [r for c in chunks for r in c.rows.to_pylist()]
    assert [r["call_id"] for r in rows] == [f"c{i}" for i in range(500)]
    expected_line, lines = 2, []
    for i in range(500):
        lines.append(expected_line)
        expected_line += 2 if i % 7 == 0 else 1
    assert [r["source_line"] for r in rows] == lines


def test_missing_final_newline_and_blank_lines():
    text = f"{PT_HEADER}\n\n{line(pt_row('c1'))}\n\n{line(pt_row('c2'))}"
    rows, rejects = rows_and_rejects(text)
    assert [(r["call_id"], r["source_line"]) for r in rows] == [("c1", 3), ("c2", 5)]
    assert rejects == []


def test_header_only_and_empty_files_read_no_lines():
    assert read_text(f"{PT_HEADER}\n") == []
    assert read_text(b"") == []


def test_the_text_of_lines_asked_for_is_read_block_by_block(tmp_path, monkeypatch):
    from cdr_workflow import load
    from cdr_workflow.load import TextCopy, lines_of

    lines = [f"{n};" + "x" * (n % 37) for n in range(1, 2001)]
    for ending in ("\n", "\r\n", ""):
        path = tmp_path / "text.csv"
        path.write_bytes(("\r\n" if ending == "\r\n" else "\n").join(lines).encode()
                         + ending.encode())
        wanted = {0, 1, 2, 500, 1999, 2000, 2001}
        expected = {n: lines[n - 1] for n in wanted if 1 <= n <= 2000}
        for block_bytes in (5, 64, 1 << 20):  # lines longer and shorter than a block
            assert lines_of(path, wanted, block_bytes) == expected
        # written as a reader does (lines cut anywhere), looked up from pieces of each write
        for piece, lookup in itertools.product((7, 100, 1 << 20), (50, 1 << 20)):
            monkeypatch.setattr(load, "LOOKUP_PIECE_BYTES", lookup)
            copy, data = TextCopy(tmp_path / "copy.csv"), path.read_bytes()
            for at in range(0, len(data), piece):
                copy.write(data[at:at + piece])
            copy.close()
            assert copy.lines(wanted) == expected
            assert len(copy.offsets) > len(data) // min(piece, lookup)


@pytest.mark.parametrize("chosen", [None, "system"])
def test_arrow_memory_comes_from_jemalloc_unless_the_user_chose(chosen: str | None) -> None:
    if "jemalloc" not in pa.supported_memory_backends():
        pytest.skip("this pyarrow has no jemalloc")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = ("import cdr_workflow.reader, pyarrow as pa; "
            "print(pa.default_memory_pool().backend_name)")
    used = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert used == (chosen or "jemalloc")


@pytest.mark.parametrize("block_bytes", [1024, 1 << 20])
def test_a_later_copy_of_an_id_is_rejected_in_its_block_or_after_it(block_bytes):
    """A file read in several blocks: each later copy of an id, in the same block or in a
    later one, is rejected naming the line of the first copy, as the day's load would; the
    reference is the file's lines counted in plain Python."""
    ids = [f"call-{n % 37}" if n % 3 else f"call-{n}" for n in range(300)]
    text = PT_HEADER + "\n" + "".join(line(pt_row(i)) + "\n" for i in ids)
    first: dict[str, int] = {}
    expected = {}
    for number, call in enumerate(ids, start=2):  # line 1 is the header
        if call in first:
            expected[number] = (f"duplicate id, earlier in the same file: {call} is at line "
                                f"{first[call]}",)
        first.setdefault(call, number)
    chunks = read_text(text, block_bytes=block_bytes)
    assert block_bytes > len(text) or len(chunks) > 4  # the small blocks do split the file
    rows, rejects = rows_and_rejects(text, block_bytes=block_bytes)
    assert {r.line: r.reasons for r in rejects} == expected
    assert sorted(r["source_line"] for r in rows) == sorted(first.values())

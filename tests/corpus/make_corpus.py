"""Writes the hostile corpus next to this file and `expected.json`, the outcome each file
must produce. Run it again after changing a case:  python tests/corpus/make_corpus.py

Outcomes: {"loaded": n, "rejected": n, "reasons": [substrings of reject reasons]} or
{"error": substring of the file-level error}.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HERE = Path(__file__).parent
PT = ["CallId", "UserSpaceId", "CallTime", "Result", "Reason", "Duration", "AnswerTime", "From",
      "To", "Amount", "Currency", "Custom", "ApplicationKey", "UserId", "ToCountryId"]
HEADER = ";".join(PT)


def row(call_id: str = "c1", **over: str) -> str:
    values = {"CallId": call_id, "UserSpaceId": "1001", "CallTime": "2026-11-21T10:00:00Z",
              "Result": "ANSWERED", "Reason": "N/A", "Duration": "30",
              "AnswerTime": "2026-11-21T10:00:05Z", "From": "+46700000001",
              "To": "+46700000002", "Amount": "0.0125", "Currency": "EUR", "Custom": "",
              "ApplicationKey": "app-1", "UserId": "user-1", "ToCountryId": "SE", **over}
    return ";".join(values[f] for f in PT)


def lines(*body: str, header: str = HEADER, end: str = "\n") -> bytes:
    return (end.join([header, *body]) + end).encode()


def ok(n: int) -> dict:
    return {"loaded": n, "rejected": 0, "reasons": []}


def bad(loaded: int, *reasons: str) -> dict:
    return {"loaded": loaded, "rejected": len(reasons), "reasons": list(reasons)}


CASES: dict[str, tuple[bytes, dict]] = {
    "voice_empty_2026-11-21.csv": (b"", ok(0)),
    "voice_header_only_2026-11-21.csv": (lines(), ok(0)),
    "voice_blank_lines_only_2026-11-21.csv": (b"\n\r\n\n", ok(0)),
    "voice_truncated_last_line_2026-11-21.csv": (
        lines(row("c1"), row("c2"))[:-40], bad(1, "expected 15 fields, found")),
    "voice_no_final_newline_2026-11-21.csv": (lines(row("c1"), row("c2"))[:-1], ok(2)),
    "voice_comma_delimited_2026-11-21.csv": (
        lines(row("c1").replace(";", ","), header=HEADER.replace(";", ",")),
        {"error": "no header and 1 fields"}),
    "voice_missing_optional_column_2026-11-21.csv": (
        lines(row("c1").rsplit(";", 1)[0], header=HEADER.rsplit(";", 1)[0]), ok(1)),
    "voice_missing_required_column_2026-11-21.csv": (
        lines(row("c1").split(";", 1)[1], header=HEADER.split(";", 1)[1]),
        {"error": "lacks required column(s) CallId"}),
    "voice_extra_column_2026-11-21.csv": (lines(row("c1") + ";x", header=HEADER + ";Region"),
                                          ok(1)),
    "voice_sql_in_header_2026-11-21.csv": (
        lines(row("c1") + ";x", header=HEADER + ';"Region; DROP TABLE voice_cdrs; --"'), ok(1)),
    "voice_reordered_columns_2026-11-21.csv": (
        lines(";".join(reversed(row("c1").split(";"))), header=";".join(reversed(PT))), ok(1)),
    "voice_missing_and_extra_fields_in_rows_2026-11-21.csv": (
        lines(row("c1"), row("c2") + ";extra", row("c3").rsplit(";", 2)[0]),
        bad(1, "expected 15 fields, found 16", "expected 15 fields, found 13")),
    "voice_quoted_semicolons_2026-11-21.csv": (lines(row("c1", Custom='"a;b;c"')), ok(1)),
    "voice_embedded_line_breaks_2026-11-21.csv": (
        lines(row("c1", Custom='"line one\nline two\r\nline three"'), row("c2")), ok(2)),
    "voice_huge_custom_2026-11-21.csv": (lines(row("c1", Custom="x" * 1_048_576), row("c2")),
                                         ok(2)),
    "voice_bom_2026-11-21.csv": (b"\xef\xbb\xbf" + lines(row("c1")), ok(1)),
    "voice_crlf_2026-11-21.csv": (lines(row("c1"), row("c2"), end="\r\n"), ok(2)),
    "voice_latin1_bytes_2026-11-21.csv": (
        lines(row("c1")) + row("c2", Custom="caf\xe9").encode("latin-1") + b"\n",
        bad(1, "not valid UTF-8")),
    "voice_nul_bytes_2026-11-21.csv": (lines(row("c1"), row("c2", Custom="a\x00b")),
                                       bad(1, "Custom contains a NUL byte")),
    "voice_na_and_empty_2026-11-21.csv": (
        lines(row("c1", Reason="N/A", Custom="", AnswerTime="", UserId="")), ok(1)),
    "voice_offsets_and_7_digits_2026-11-21.csv": (
        lines(row("c1", CallTime="2026-11-21T12:00:00.1234567+02:00",
                  AnswerTime="2026-11-21T10:00:05.0000001Z"),
              row("c2", CallTime="2026-11-21 10:00:00", AnswerTime="")), ok(2)),
    "voice_dates_of_other_days_2026-11-21.csv": (
        lines(row("late", CallTime="2026-11-19T23:00:00Z", AnswerTime=""),
              row("early", CallTime="2026-11-22T01:00:00Z", AnswerTime="")), ok(2)),
    "voice_negative_amount_2026-11-21.csv": (lines(row("c1"), row("c2", Amount="-0.5")),
                                             bad(1, "Amount is negative")),
    "voice_non_numeric_amount_2026-11-21.csv": (lines(row("c1", Amount="12 EUR")),
                                                bad(0, "Amount is not a decimal")),
    "voice_too_many_decimals_2026-11-21.csv": (lines(row("c1", Amount="0.1234567")),
                                               bad(0, "at most 6 decimal places")),
    "voice_decimal_comma_2026-11-21.csv": (lines(row("c1", Amount="0,25")), ok(1)),
    "voice_negative_duration_2026-11-21.csv": (lines(row("c1", Duration="-1")),
                                               bad(0, "Duration is negative")),
    "voice_non_numeric_duration_2026-11-21.csv": (lines(row("c1", Duration="1m30s")),
                                                  bad(0, "Duration is not an integer")),
    "voice_unknown_result_2026-11-21.csv": (lines(row("c1", Result="MAYBE")),
                                            bad(0, "Result is not one of")),
    "voice_unknown_reason_2026-11-21.csv": (lines(row("c1", Reason="SOLARFLARE")),
                                            bad(0, "Reason is not one of")),
    "voice_padded_enum_2026-11-21.csv": (lines(row("c1", Result=" ANSWERED ")), ok(1)),
    "voice_answer_before_call_2026-11-21.csv": (
        lines(row("c1", AnswerTime="2026-11-21T09:00:00Z")),
        bad(0, "answer_time is before call_time")),
    "voice_bad_currency_and_country_2026-11-21.csv": (
        lines(row("c1", Currency="euro", ToCountryId="Sweden")),
        bad(0, "Currency is not a 3-letter ISO 4217 code: 'euro'")),
    "voice_same_id_twice_2026-11-21.csv": (
        lines(row("c1"), row("c1")),
        bad(1, "duplicate id, earlier in the same file: c1 is at line 2")),
    "voice_unterminated_quote_2026-11-21.csv": (  # costs its own record, not the lines after
        lines(row("c1"), row("c2", Custom='"never closed'), row("c3")),
        bad(2, "malformed quoting")),
    "voice_two_unterminated_quotes_2026-11-21.csv": (  # two broken quotes never pair up
        lines(row("c1", Custom='"never closed'), row("c2"), row("c3"),
              row("c4", Custom='"again')), bad(2, "malformed quoting", "malformed quoting")),
    "voice_text_after_closing_quote_2026-11-21.csv": (  # rejected alone, whatever its block
        lines(row("c1"), row("c2", Custom='"a"b')), bad(1, "malformed quoting")),
    "voice_stray_quote_mid_field_2026-11-21.csv": (  # only a field starting with " is quoted
        lines(row("c1"), row("c2", Custom='size=5" screen'), row("c3"), row("c4")), ok(4)),
    "voice_header_again_mid_file_2026-11-21.csv": (  # two exports, other column orders
        lines(row("c1"), ";".join(reversed(PT)), ";".join(reversed(row("c2").split(";")))),
        ok(2)),
    "voice_phone_originated_extra_column_2026-11-21.csv": (
        lines("c1;1001;2026-11-21T10:00:00Z;ANSWERED;N/A;30;+4670001;+4670002;0.1;EUR;;app-1;x",
              header="CallId;UserSpaceId;CallTime;Result;Reason;Duration;From;To;Amount;"
                     "Currency;Custom;ApplicationKey;Region"), ok(1)),
    "voice_plus_sign_integer_2026-11-21.csv": (lines(row("c1", UserSpaceId="+7")), ok(1)),
    "voice_integer_out_of_range_2026-11-21.csv": (
        lines(row("c1", UserSpaceId="99999999999999999999")),
        bad(0, "UserSpaceId is not an integer: '99999999999999999999'")),
    "voice_padded_and_blank_ids_2026-11-21.csv": (
        lines(row(" c1"), row("c2 "), row("   ")), bad(2, "CallId is missing")),
    "voice_utf16_2026-11-21.csv": (
        lines(row("c1", Custom="café"), row("c2"), end="\r\n").decode().encode("utf-16"),
        ok(2)),
    "voice_renamed_amount_2026-11-21.csv": (  # loads; the key_columns_present check fails
        lines(row("c1"), header=HEADER.replace("Amount", "Amt")), ok(1)),
    "voice_empty_id_2026-11-21.csv": (lines(row("")), bad(0, "CallId is missing")),
    "voice_headerless_phone_originated_2026-11-21.csv": (
        (b"c1;1001;2026-11-21T10:00:00Z;ANSWERED;N/A;30;+4670001;+4670002;0.1;EUR;;app-1\n"
         ), ok(1)),
    "voice_valid_2026-11-21.csv.gz": (gzip.compress(lines(row("c1"), row("c2"))), ok(2)),
    "voice_corrupt_2026-11-21.csv.gz": (gzip.compress(lines(row("c1")) * 200)[:120],
                                        {"error": "cannot decompress"}),
    "verification_flashcall_and_sms_2026-11-21.csv": (
        (b"VerificationId;UserSpaceId;Method;StartTimestamp;EndTimestamp;Result;Reason;CLI;"
         b"IdentityType;IdentityEndpoint;Country;Reference;Custom;ApplicationKey;Amount;Currency\n"
         b"v1;7;flashCall;2026-11-21T10:00:00Z;2026-11-21T10:00:09Z;SUCCESSFUL;N/A;+4611;number;"
         b"+46700000001;SE;r1;;app-1;0.002;EUR\n"
         b"v2;7;SMS;2026-11-21T10:00:00Z;2026-11-21T09:00:00Z;FAIL;Expired;;number;+46700000002;"
         b"SE;r2;;app-1;0.01;EUR\n"),
        bad(1, "end_timestamp is before start_timestamp")),
}


def main() -> None:
    expected = {}
    for name, (data, outcome) in CASES.items():
        (HERE / name).write_bytes(data)
        expected[name] = outcome
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {len(CASES)} files")


if __name__ == "__main__":
    main()

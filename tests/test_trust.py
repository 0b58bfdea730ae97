"""Reconciliation that cannot be fooled: drifted headers, names that tell the call type, and
tables made by an earlier version."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import dagster as dg
import pytest
from helpers import PT_HEADER, line, load_definitions, pt_row, rows_and_rejects

from cdr_workflow.cli import main as cli
from cdr_workflow.demo import write_day
from cdr_workflow.layouts import LAYOUTS
from cdr_workflow.warehouse import open_warehouse

DAY = dt.date(2026, 11, 21)
PO_HEADER = ";".join(f.sinch_name for f in LAYOUTS["phone_originated"].fields)


def test_a_renamed_money_column_fails_the_day_check_and_names_the_rename(env, drop_dir, capsys):
    path = drop_dir / f"voice_phone_terminated_{DAY}.csv"
    path.write_text(PT_HEADER.replace("Amount", "Amt") + "\n"
                    + "".join(line(pt_row(f"c{i}")) + "\n" for i in range(5)))
    with dg.instance_for_test() as instance:
        result = load_definitions(env).resolve_job_def("cdr_day_job").execute_in_process(
            partition_key=str(DAY), instance=instance, asset_selection=[
                dg.AssetKey(k) for k in ("voice_file", "voice_cdrs", "voice_reconciliation")])
        report = instance.get_latest_materialization_event(
            dg.AssetKey("voice_reconciliation")).asset_materialization.metadata["report"].value
    evaluations = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = evaluations["key_columns_present"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.partition == str(DAY)
    assert "lacks Amount" in check.metadata["detail"].value
    assert "Amt (renamed Amount?)" in report and "all checks pass" not in report
    assert cli(["validate", str(path)]) == 0
    assert "schema drift: missing Amount; unknown Amt (renamed Amount?)" in capsys.readouterr().out


def test_the_call_type_in_the_name_wins_over_a_guess_from_the_columns():
    row = {**pt_row("c1"), "CallTime": "2026-11-21T10:00:00Z"}
    values = ";".join(row[f.sinch_name] for f in LAYOUTS["phone_originated"].fields)
    text = f"{PO_HEADER};Region\n{values};north\n"
    rows, rejects = rows_and_rejects(text, name="voice_phone_originated_2026-11-21.csv")
    assert rejects == []
    assert rows[0]["call_type"] == "phone_originated"
    assert rows[0]["extra_fields"] == '{"Region": "north"}'


@pytest.mark.parametrize("warehouse_url", ["duckdb", "postgres"], indirect=True)
def test_tables_of_an_earlier_version_gain_the_new_columns(warehouse):
    with warehouse._transaction() as con:  # cdr_files as the previous release made it
        warehouse.execute(con, "CREATE TABLE cdr_files (kind VARCHAR, cdr_date DATE)")
    warehouse.ensure_tables()
    columns = {name for (name,) in warehouse.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'cdr_files'")}
    assert {"schema_drift", "amount_totals", "rows_read"} <= columns


def test_neighbours_of_cdr_files_never_fail_a_day(env, drop_dir):
    write_day(drop_dir, DAY, rows_per_file=5)
    for name in (f"~$voice_{DAY}.csv", f"._voice_{DAY}.csv", f"invoice_{DAY}.csv",
                 f".voice_{DAY}.csv", f"voice_{DAY}.csv.crdownload", f"voice_{DAY}.csv.tmp"):
        (drop_dir / name).write_bytes(b"\x00\x01 not a CDR file")
    with dg.instance_for_test() as instance:
        result = load_definitions(env).resolve_job_def("cdr_day_job").execute_in_process(
            partition_key=str(DAY), instance=instance)
    assert result.success
    loaded = {f for (f,) in open_warehouse(env["CDR_WAREHOUSE_URL"]).query(
        "SELECT source_file FROM cdr_files")}
    assert loaded == {p.name for p in drop_dir.iterdir() if p.name.startswith(
        ("voice_", "verification_")) and p.name.endswith(".csv")}


def test_a_value_that_does_not_convert_is_a_reject_never_a_traceback(tmp_path, capsys):
    path = tmp_path / f"voice_{DAY}.csv"
    path.write_text(PT_HEADER + "\n" + line(pt_row("c1", UserSpaceId="+7")) + "\n"
                    + line(pt_row("c2", UserSpaceId="1" * 25, Duration="3.5")) + "\n")
    assert cli(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert "2 lines read, 1 valid, 1 rejected" in out.out and "Traceback" not in out.err
    assert f"UserSpaceId is not an integer: '{'1' * 25}'" in out.out
    assert "Duration is not an integer: '3.5'" in out.out


def test_columns_are_never_shifted_when_a_header_comes_again():
    fields = [f.sinch_name for f in LAYOUTS["phone_terminated"].fields]
    reordered = fields[::-1]
    second = pt_row("c2", From="+100", To="+200", ApplicationKey="app-9", UserId="u-9")
    text = (PT_HEADER + "\n" + line(pt_row("c1")) + "\n" + ";".join(reordered) + "\n"
            + ";".join(second[f] for f in reordered) + "\n")
    rows, rejects = rows_and_rejects(text)
    assert rejects == []
    c2 = next(r for r in rows if r["call_id"] == "c2")
    assert (c2["from_endpoint"], c2["to_endpoint"], c2["application_key"], c2["user_id"],
            c2["source_line"]) == ("+100", "+200", "app-9", "u-9", 4)


def test_money_the_reader_loses_fails_the_amount_check(env, drop_dir, monkeypatch):
    """The reference totals come from DuckDB's reading of the text: a reader that loses an
    amount (planted here) is caught, naming currency, key and both totals."""
    import pyarrow as pa

    from cdr_workflow import values
    from cdr_workflow.layouts import FieldType

    real_convert = values.convert

    def losing_convert(text, f, reasons, *more):
        converted = real_convert(text, f, reasons, *more)
        if f.type is FieldType.DECIMAL and len(converted):
            converted = pa.concat_arrays([pa.nulls(1, converted.type), converted[1:]])
        return converted

    monkeypatch.setattr(values, "convert", losing_convert)
    rows = [pt_row("c1", Amount="1.5"), pt_row("c2", Amount="2.25")]
    (drop_dir / f"voice_phone_terminated_{DAY}.csv").write_text(
        PT_HEADER + "\n" + "".join(line(r) + "\n" for r in rows))
    with dg.instance_for_test() as instance:
        result = load_definitions(env).resolve_job_def("cdr_day_job").execute_in_process(
            partition_key=str(DAY), instance=instance, asset_selection=[
                dg.AssetKey(k) for k in ("voice_file", "voice_cdrs", "voice_reconciliation")])
    check = next(c for c in result.get_asset_check_evaluations()
                 if c.check_name == "amounts_match_file")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["detail"].value == "EUR/app-1: file 3.750000 vs warehouse 2.250000"


def test_the_independent_reading_counts_the_columns_of_a_first_record_with_a_line_break(
        tmp_path):
    """Without a header the reference knows the layout by the first record's width: a quoted
    line break in that record must not cut it short (it would shift every column)."""
    from cdr_workflow.independent import text_amounts
    from cdr_workflow.kinds import VOICE

    fields = LAYOUTS["phone_terminated"].fields
    row = pt_row("a", Custom='"two\nlines"', Amount="1.5", Currency="EUR", ApplicationKey="k")
    path = tmp_path / "voice_2026-11-21.csv"
    path.write_text(";".join(row[f.sinch_name] for f in fields) + "\n", encoding="utf-8")
    assert text_amounts(path, VOICE) == {("EUR", "k"): Decimal("1.5")}


def test_a_record_whose_id_is_a_field_name_is_not_a_header_to_the_reference(tmp_path):
    """A header line names most of its fields; a record whose id happens to read `callid`
    does not, for the reader or for the independent reading (which took it for a header and
    lost the money around it)."""
    from cdr_workflow.independent import text_amounts
    from cdr_workflow.kinds import VOICE

    fields = LAYOUTS["phone_terminated"].fields
    rows = [pt_row(call_id, Amount="1.5", Currency="EUR", ApplicationKey="k")
            for call_id in ("a", "callid", "b")]
    path = tmp_path / "voice_2026-11-21.csv"
    path.write_text("".join(";".join(r[f.sinch_name] for f in fields) + "\n" for r in rows),
                    encoding="utf-8")
    assert text_amounts(path, VOICE) == {("EUR", "k"): Decimal("4.5")}
    with_header = tmp_path / "voice_2026-11-22.csv"
    with_header.write_text(PT_HEADER + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert text_amounts(with_header, VOICE) == {("EUR", "k"): Decimal("4.5")}


@pytest.mark.parametrize("id_first", [True, False])
def test_the_reference_reads_each_line_s_money_by_the_header_above_it(tmp_path, id_first):
    """Two exports concatenated, the second with its columns in another order: each line's
    amount, currency and key are read where its own header puts them, whichever column the
    second header moved (the id's or not)."""
    from cdr_workflow.independent import text_amounts
    from cdr_workflow.kinds import VOICE

    names = [f.sinch_name for f in LAYOUTS["phone_terminated"].fields]
    moved = names[::-1] if id_first else [names[0], *names[1:][::-1]]
    first = pt_row("c1", Amount="1.5", Currency="EUR", ApplicationKey="k")
    second = pt_row("c2", Amount="2.25", Currency="EUR", ApplicationKey="k")
    path = tmp_path / "voice_2026-11-21.csv"
    path.write_text(PT_HEADER + "\n" + line(first) + "\n" + ";".join(moved) + "\n"
                    + ";".join(second[name] for name in moved) + "\n", encoding="utf-8")
    assert text_amounts(path, VOICE) == {("EUR", "k"): Decimal("3.75")}


@pytest.mark.parametrize("header", [True, False])
def test_the_reference_money_of_accepted_lines_is_the_file_s_less_its_rejected_lines(
        tmp_path, header):
    """The lines the reader rejected are read again apart and their money taken off the
    file's: below its header in one scan, or by the layout a headerless file's first record
    gives, that record itself left out."""
    from cdr_workflow.kinds import VOICE
    from cdr_workflow.load import accepted_text_amounts

    rows = [line(pt_row(f"c{n}", Amount=amount, Currency="EUR", ApplicationKey="k"))
            for n, amount in enumerate(["1.5", "2.25", "4", "0.125"])]
    path = tmp_path / "voice_2026-11-21.csv"
    path.write_text((PT_HEADER + "\n" if header else "") + "\n".join(rows) + "\n",
                    encoding="utf-8")
    rejected = [rows[1], rows[3]]  # the first record too where there is no header
    if not header:
        rejected.append(rows[0])
    lines = tmp_path / "rejected.txt"
    lines.write_text("".join(f"{text}\n" for text in rejected), encoding="utf-8")
    kept = Decimal("4") + (Decimal("1.5") if header else 0)
    assert accepted_text_amounts(path, lines, VOICE, tmp_path / "rejected.csv") == {
        ("EUR", "k"): kept}

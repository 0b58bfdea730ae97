"""Warehouse invariants, one suite run against DuckDB and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from helpers import PT_HEADER, line, pt_row

from cdr_workflow import day_facts
from cdr_workflow.day_facts import read_day_facts
from cdr_workflow.errors import CdrFileError
from cdr_workflow.kinds import VOICE
from cdr_workflow.load import load_day
from cdr_workflow.seen_ids import SeenIds, id_hashes
from cdr_workflow.sources import DEFAULT_FILE_PATTERN, NoFileError
from cdr_workflow.sources.local import LocalSource
from cdr_workflow.warehouse import day_load, open_warehouse
from cdr_workflow.warehouse.day_load import decode_amounts
from cdr_workflow.warehouse.tables import CDR_TABLES, table_of

DAY = dt.date(2026, 11, 21)


@pytest.fixture
def source(tmp_path: Path) -> LocalSource:
    (tmp_path / "drop").mkdir()
    return LocalSource(tmp_path / "drop", re.compile(DEFAULT_FILE_PATTERN))


def write(source: LocalSource, name: str, rows: list[dict[str, str]]) -> Path:
    path = source.drop_dir / name
    path.write_text(PT_HEADER + "\n" + "".join(line(r) + "\n" for r in rows), encoding="utf-8")
    return path


def counts(warehouse) -> tuple[int, int, int]:
    ((table,),) = warehouse.query("SELECT COUNT(*) FROM voice_cdrs")
    ((rejects,),) = warehouse.query("SELECT COUNT(*) FROM cdr_rejects")
    ((files,),) = warehouse.query("SELECT COUNT(*) FROM cdr_files")
    return table, rejects, files


def test_tables_are_created_on_first_use_with_exact_types(warehouse):
    warehouse.ensure_tables()
    assert warehouse.query("SELECT COUNT(*) FROM verification_cdrs") == [(0,)]
    types = {name: (kind.lower(), precision, scale) for name, kind, precision, scale in
             warehouse.query("SELECT column_name, data_type, numeric_precision, numeric_scale "
                             "FROM information_schema.columns WHERE table_name = 'voice_cdrs'")}
    assert types["amount"][0].startswith(("decimal", "numeric")) and types["amount"][1:] == (
        18, 6), "amounts are exact decimals, never floats"
    assert types["call_time"][0] == "timestamp with time zone"
    assert types["duration"][0] == "bigint" and types["cdr_date"][0] == "date"
    assert types["call_id"][0] in ("varchar", "character varying")


def test_reloading_a_day_leaves_exactly_one_copy(warehouse, source):
    write(source, "voice_2026-11-21.csv", [pt_row("a"), pt_row("b", Duration="-1")])
    first = load_day(source, warehouse, VOICE, DAY, "run-1")
    second = load_day(source, warehouse, VOICE, DAY, "run-2")
    assert (first.rows_loaded, first.rows_rejected) == (1, 1)
    assert (second.rows_loaded, second.rows_rejected) == (1, 1)
    assert counts(warehouse) == (1, 1, 1)
    assert warehouse.query("SELECT DISTINCT load_id FROM voice_cdrs") == [("run-2",)]


def test_a_replaced_file_replaces_the_day_without_leftovers(warehouse, source):
    write(source, "voice_2026-11-21.csv", [pt_row("a"), pt_row("b")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    write(source, "voice_2026-11-21.csv", [pt_row("c")])
    load_day(source, warehouse, VOICE, DAY, "run-2")
    assert warehouse.query("SELECT call_id FROM voice_cdrs") == [("c",)]


def test_other_days_are_untouched_by_a_reload(warehouse, source):
    write(source, "voice_2026-11-20.csv", [pt_row("x", CallTime="2026-11-20T10:00:00Z",
                                                  AnswerTime="")])
    write(source, "voice_2026-11-21.csv", [pt_row("a")])
    load_day(source, warehouse, VOICE, DAY - dt.timedelta(days=1), "run-1")
    load_day(source, warehouse, VOICE, DAY, "run-2")
    load_day(source, warehouse, VOICE, DAY, "run-3")
    assert sorted(warehouse.query("SELECT call_id FROM voice_cdrs")) == [("a",), ("x",)]


def test_counts_add_up_and_rejects_are_findable_by_file_and_line(warehouse, source):
    write(source, "voice_2026-11-21.csv",
          [pt_row("a"), pt_row("b", Currency="eu"), pt_row("c"), pt_row("a")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    ((read, loaded, rejected),) = warehouse.query(
        "SELECT rows_read, rows_loaded, rows_rejected FROM cdr_files")
    assert (read, loaded, rejected) == (4, 2, 2)
    rejects = warehouse.query(
        "SELECT source_file, source_line, reasons FROM cdr_rejects ORDER BY source_line")
    assert [(f, n) for f, n, _ in rejects] == [("voice_2026-11-21.csv", 3),
                                               ("voice_2026-11-21.csv", 5)]
    assert "Currency" in rejects[0][2] and "duplicate" in rejects[1][2]


def test_each_file_of_a_day_has_its_own_counts_in_the_ledger(warehouse, source):
    write(source, "voice_2026-11-21.csv", [pt_row("a"), pt_row("b", Duration="-1"), pt_row("c")])
    write(source, "voice_late_2026-11-21.csv",
          [pt_row("d"), pt_row("a"), pt_row("e", Currency="eu")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    assert sorted(warehouse.query(
        "SELECT source_file, rows_read, rows_loaded, rows_rejected FROM cdr_files")) == [
        ("voice_2026-11-21.csv", 3, 2, 1), ("voice_late_2026-11-21.csv", 3, 1, 2)]


def test_an_id_loaded_on_another_day_is_rejected_naming_the_original(warehouse, source):
    write(source, "voice_2026-11-20.csv", [pt_row("dup", CallTime="2026-11-20T10:00:00Z",
                                                    AnswerTime="")])
    write(source, "voice_2026-11-21.csv", [pt_row("dup"), pt_row("fresh")])
    load_day(source, warehouse, VOICE, DAY - dt.timedelta(days=1), "run-1")
    result = load_day(source, warehouse, VOICE, DAY, "run-2")
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    ((reason,),) = warehouse.query("SELECT reasons FROM cdr_rejects")
    assert reason == ("duplicate id, already loaded for another day: dup is in "
                      "voice_2026-11-20.csv line 2 (cdr_date 2026-11-20)")


def test_stored_id_hashes_are_duckdbs_own(tmp_path, source):
    """The load hashes ids in Python; the search of other days reads the column in SQL: the
    two must agree, or a copy on another day would go unseen."""
    warehouse = open_warehouse(f"duckdb:///{tmp_path}/w.duckdb")
    write(source, "voice_2026-11-21.csv", [pt_row(f"id-{n}") for n in range(50)]
          + [pt_row("ünïcode ✓"), pt_row("")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    assert warehouse.query("SELECT COUNT(*), COUNT(*) FILTER (WHERE id_hash = "
                           "CAST(hash(call_id) >> 1 AS BIGINT)) FROM voice_cdrs") == [(51, 51)]


def test_duckdb_stores_ids_as_they_are_and_an_earlier_table_keeps_its_own(tmp_path, source):
    """Compressing random ids costs DuckDB's load more than the space it saves: a new
    table stores them uncompressed, while a column of the same shape (user ids here) is
    compressed as DuckDB chooses. A table an earlier version made keeps loading as it is."""
    write(source, f"voice_{DAY}.csv",
          [pt_row(f"id-{n}", UserId=f"user-{n}") for n in range(3000)])

    def compressions(url: str) -> dict[str, set[str]]:
        warehouse = open_warehouse(url)
        load_day(source, warehouse, VOICE, DAY, "run-1")
        warehouse.query("CHECKPOINT")  # until then every segment is held uncompressed
        return {column: set(kinds) for column, kinds in warehouse.query(
            "SELECT column_name, list(DISTINCT compression) FROM pragma_storage_info("
            "'voice_cdrs') WHERE segment_type = 'VARCHAR' AND column_name IN "
            "('call_id', 'user_id') GROUP BY 1")}

    now = compressions(f"duckdb:///{tmp_path}/new.duckdb")
    assert now["call_id"] == {"Uncompressed"} and "Uncompressed" not in now["user_id"]
    earlier = f"duckdb:///{tmp_path}/earlier.duckdb"
    made_before = CDR_TABLES["voice"].ddl(lambda c: c.definition)[0]  # without the clause
    duckdb.connect(f"{tmp_path}/earlier.duckdb").execute(made_before).close()
    assert "Uncompressed" not in compressions(earlier)["call_id"]


def two_days_sharing_an_id(source: LocalSource, warehouse) -> None:
    write(source, "voice_2026-11-20.csv", [pt_row("dup", CallTime="2026-11-20T10:00:00Z",
                                                    AnswerTime=""), pt_row("other")])
    write(source, "voice_2026-11-21.csv", [pt_row("dup"), pt_row("fresh")])
    load_day(source, warehouse, VOICE, DAY - dt.timedelta(days=1), "run-1")


def test_rows_an_older_version_left_without_hashes_are_still_searched(tmp_path, source):
    """Rows loaded before `id_hash` existed (or by a DuckDB that hashes otherwise) get their
    hashes when a process next opens the warehouse: their copies are still found."""
    url = f"duckdb:///{tmp_path}/w.duckdb"
    two_days_sharing_an_id(source, open_warehouse(url))
    open_warehouse(url).query("UPDATE voice_cdrs SET id_hash = NULL")
    warehouse = open_warehouse(url)  # a new process
    result = load_day(source, warehouse, VOICE, DAY, "run-2")
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    assert warehouse.query("SELECT COUNT(*) FROM voice_cdrs WHERE id_hash IS NULL") == [(0,)]


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_days_an_older_version_loaded_have_their_id_hashes_recorded(warehouse_url, source):
    """PostgreSQL searches other days in the id hashes each load records: days loaded before
    the record existed get theirs from their rows at the next load, and a call restored to a
    day is added to that day's record, so its copies are still found."""
    d20, d22, d23 = (DAY + dt.timedelta(days=n) for n in (-1, 1, 2))
    write(source, f"voice_{d20}.csv", [pt_row("x", CallTime=f"{d20}T10:00:00Z",
                                              AnswerTime="")])
    write(source, f"voice_{DAY}.csv", [pt_row("x"), pt_row("y")])
    load_day(source, open_warehouse(warehouse_url), VOICE, d20, "run-1")
    load_day(source, open_warehouse(warehouse_url), VOICE, DAY, "run-2")  # x held
    open_warehouse(warehouse_url).query("DELETE FROM cdr_id_hashes")  # as an older version
    warehouse = open_warehouse(warehouse_url)  # a new process
    write(source, f"voice_{d20}.csv", [pt_row("z", CallTime=f"{d20}T10:00:00Z",
                                              AnswerTime="")])
    load_day(source, warehouse, VOICE, d20, "run-3")  # x restored to DAY
    assert ("voice_cdrs", DAY, "run-2") in warehouse.query(
        "SELECT table_name, cdr_date, load_id FROM cdr_id_hashes")
    for later, call in ((d22, "y"), (d23, "x")):  # y: recorded from the rows; x: restored
        write(source, f"voice_{later}.csv", [pt_row(call, CallTime=f"{later}T10:00:00Z",
                                                    AnswerTime="")])
        result = load_day(source, warehouse, VOICE, later, "run-4")
        assert (result.rows_loaded, result.rows_rejected) == (0, 1), call
    assert sorted(warehouse.query("SELECT call_id, cdr_date FROM voice_cdrs")) == [
        ("x", DAY), ("y", DAY), ("z", d20)]


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("caught_up", [True, False])
@pytest.mark.parametrize("out_of_date", ["reloaded by an earlier release",
                                         "hashed by another DuckDB"])
def test_a_day_whose_record_is_out_of_date_is_still_searched(
        warehouse_url, source, monkeypatch, out_of_date, caught_up):
    """A record is current while the ledger names the load that wrote it and DuckDB hashes
    alike. Otherwise (a release before reloaded the day during a rolling deploy, or DuckDB
    changed its hash) the next load records the day again from its rows; until then the
    day is searched as if it had no record, by the load and by the reconciliation."""
    from cdr_workflow.warehouse import postgres
    d22 = DAY + dt.timedelta(days=1)
    write(source, f"voice_{DAY}.csv", [pt_row("y")])
    warehouse = open_warehouse(warehouse_url)
    load_day(source, warehouse, VOICE, DAY, "run-1")
    if out_of_date == "reloaded by an earlier release":
        copy_rows(warehouse, "WHERE call_id = 'y'", call_id="'z'")  # the day is now [y, z]
        warehouse.query("UPDATE cdr_files SET load_id = 'earlier-release'")
    else:
        copy_rows(warehouse, "WHERE call_id = 'y'", call_id="'z'")
        warehouse.query("UPDATE cdr_id_hashes SET hash_probe = hash_probe + 1")
    if not caught_up:
        monkeypatch.setattr(postgres.PostgresWarehouse, "catch_up", lambda *args: None)
    write(source, f"voice_{d22}.csv", [pt_row("z", CallTime=f"{d22}T10:00:00Z",
                                              AnswerTime="")])
    result = load_day(source, warehouse, VOICE, d22, "run-2")
    assert (result.rows_loaded, result.rows_rejected) == (0, 1)
    recorded = warehouse.query("SELECT load_id, hash_probe FROM cdr_id_hashes "
                               "WHERE cdr_date = ?", (DAY,))
    assert (recorded == [(warehouse.query("SELECT MAX(load_id) FROM cdr_files WHERE "
                                          "cdr_date = ?", (DAY,))[0][0],
                          postgres._hash_probe())]) == caught_up
    copy_rows(warehouse, "WHERE call_id = 'z'", cdr_date=f"DATE '{d22}'")  # by hand, as well
    assert read_day_facts(warehouse, VOICE, d22, d22).duplicate_ids_in_table == 1


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
@pytest.mark.parametrize(("recorded_per_probe", "searched"), [(100, [DAY - dt.timedelta(days=1)]),
                                                              (0, None)])
def test_postgres_looks_ids_up_in_the_records_or_for_a_small_day_in_the_index(
        warehouse, source, monkeypatch, recorded_per_probe, searched):
    """Other days are searched in their recorded hashes, unless they hold many times more
    ids than the day (then the index on the id finds them): either way a copy is found by
    the load, and a copy it did not make by the reconciliation."""
    from cdr_workflow.warehouse import postgres
    monkeypatch.setattr(postgres, "RECORDED_PER_PROBE", recorded_per_probe)
    found = []
    search = warehouse.days_sharing_ids
    monkeypatch.setattr(warehouse, "days_sharing_ids",
                        lambda *args, **kw: found.append(search(*args, **kw)) or found[-1])
    two_days_sharing_an_id(source, warehouse)
    result = load_day(source, warehouse, VOICE, DAY, "run-2")
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    assert found[-1] == searched
    copy_rows(warehouse, "WHERE call_id = 'fresh'", cdr_date="cdr_date - 1")
    with warehouse.connect() as con:
        warehouse.record_id_hashes(con, "voice_cdrs", DAY - dt.timedelta(days=1),
                                   id_hashes(pa.array(["fresh"])), "by hand", replacing=False)
    assert read_day_facts(warehouse, VOICE, DAY, DAY).duplicate_ids_in_table == 1
    assert found[-1] == searched


@pytest.mark.parametrize("warehouse_url", ["duckdb", "postgres"], indirect=True)
def test_the_reconciliation_does_not_trust_the_stored_hashes(warehouse, source, monkeypatch):
    """A load that stores wrong hashes (in its rows on DuckDB, in its record on PostgreSQL)
    misses a copy on another day; the reconciliation checks the day's hashes against its
    ids before using them, and finds the copy."""
    two_days_sharing_an_id(source, warehouse)
    monkeypatch.setattr(day_load, "stored_id_hashes", lambda hashes: pa.array(
        np.full(len(hashes), 7, np.int64)))
    monkeypatch.setattr(SeenIds, "hashes", lambda seen: np.array([7], np.uint64))
    load_day(source, warehouse, VOICE, DAY, "run-2")
    assert warehouse.query("SELECT COUNT(*) FROM voice_cdrs WHERE call_id = 'dup'") == [(2,)]
    facts = read_day_facts(warehouse, VOICE, DAY, DAY - dt.timedelta(days=1))
    assert facts.duplicate_ids_in_table == 1


def copy_rows(warehouse, where: str, **changed: str) -> None:
    """Copies of the voice rows `where` selects, with columns `changed` to SQL values."""
    columns = table_of(VOICE).column_names
    warehouse.query(f"INSERT INTO voice_cdrs ({', '.join(columns)}) SELECT "
                    f"{', '.join(changed.get(c, c) for c in columns)} FROM voice_cdrs {where}")


def _failing_beside():
    raise ConnectionError("no second connection")


@pytest.mark.parametrize("reading", ["one connection", "beside", "beside fails"])
def test_the_reconciliation_counts_ids_present_twice_however_they_came(
        warehouse, source, monkeypatch, reading):
    """Copies the load never made (written to the table by hand, say) are found: each id
    once, however many copies it has, a missing id too. On PostgreSQL a big day counts them
    on a connection of its own, beside its other reads, or on the first if that one fails."""
    if reading != "one connection":
        monkeypatch.setattr(day_facts, "BESIDE_ROWS", 1)
    on_server = warehouse.display_url.startswith("postgresql")
    connections_beside = []
    beside = _failing_beside if reading == "beside fails" else warehouse.beside
    monkeypatch.setattr(warehouse, "beside", lambda: connections_beside.append(1) or beside())
    write(source, "voice_2026-11-21.csv", [pt_row(i) for i in ("a", "b", "c", "d")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    assert read_day_facts(warehouse, VOICE, DAY, DAY).duplicate_ids_in_table == 0
    copy_rows(warehouse, "WHERE call_id IN ('c', 'd')", call_id="NULL")  # no id, twice
    assert read_day_facts(warehouse, VOICE, DAY, DAY).duplicate_ids_in_table == 1
    for copied in ("'a', 'b'", "'a'"):  # a: 4 copies, b: 2
        warehouse.query(f"INSERT INTO voice_cdrs SELECT * FROM voice_cdrs "
                        f"WHERE call_id IN ({copied})")
    assert warehouse.query("SELECT COUNT(*) FROM voice_cdrs") == [(10,)]
    assert read_day_facts(warehouse, VOICE, DAY, DAY).duplicate_ids_in_table == 3
    assert len(connections_beside) == (3 if on_server and reading != "one connection" else 0)


def test_the_reconciliation_reads_uncommitted_copies_on_its_own_connection(
        warehouse, source, monkeypatch):
    """Inside a transaction that has written, the count is not made on a connection that
    would not see what it wrote."""
    monkeypatch.setattr(day_facts, "BESIDE_ROWS", 1)
    write(source, "voice_2026-11-21.csv", [pt_row(i) for i in ("a", "b")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    with warehouse.transaction():
        warehouse.query("INSERT INTO voice_cdrs SELECT * FROM voice_cdrs WHERE call_id = 'a'")
        assert read_day_facts(warehouse, VOICE, DAY, DAY).duplicate_ids_in_table == 1


def test_the_reconciliation_counts_an_id_also_on_another_day(warehouse, source):
    """A copy on another day that the load never made (its id hash right: in the row, or
    on PostgreSQL in the day's record) is found."""
    write(source, "voice_2026-11-21.csv", [pt_row(i) for i in ("a", "b")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    copy_rows(warehouse, "WHERE call_id = 'a'", cdr_date="cdr_date - 1")
    with warehouse.connect() as con:
        warehouse.record_id_hashes(con, "voice_cdrs", DAY - dt.timedelta(days=1),
                                   id_hashes(pa.array(["a"])), "by hand", replacing=False)
    assert sorted(warehouse.query("SELECT cdr_date FROM voice_cdrs WHERE call_id = 'a'")) == [
        (DAY - dt.timedelta(days=1),), (DAY,)]
    assert read_day_facts(warehouse, VOICE, DAY, DAY).duplicate_ids_in_table == 1


def test_same_id_in_two_files_of_one_day_keeps_the_first(warehouse, source):
    write(source, "voice_phone_terminated_2026-11-21.csv", [pt_row("same")])
    write(source, "voice_zz_2026-11-21.csv", [pt_row("same")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    assert warehouse.query("SELECT source_file FROM voice_cdrs") == [
        ("voice_phone_terminated_2026-11-21.csv",)]
    ((reason,),) = warehouse.query("SELECT reasons FROM cdr_rejects")
    assert "voice_phone_terminated_2026-11-21.csv line 2" in reason


def test_amounts_are_exact_decimals(warehouse, source):
    write(source, "voice_2026-11-21.csv",
          [pt_row(f"c{i}", Amount="0.000001") for i in range(1000)])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    ((total,),) = warehouse.query("SELECT SUM(amount) FROM voice_cdrs")
    assert Decimal(total) == Decimal("0.001")


def test_a_failing_load_rolls_back_and_keeps_the_previous_day(warehouse, source):
    write(source, "voice_2026-11-21.csv", [pt_row("a")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    (source.drop_dir / "voice_2026-11-21.csv").write_bytes(b"\x1f\x8b broken gzip")
    with pytest.raises(Exception, match="cannot decompress"):
        load_day(source, warehouse, VOICE, DAY, "run-2")
    assert counts(warehouse) == (1, 0, 1)
    assert warehouse.query("SELECT load_id FROM voice_cdrs") == [("run-1",)]


def test_a_day_with_no_file_names_the_folder_and_pattern(warehouse, source):
    with pytest.raises(NoFileError, match=r"no voice CDR file for 2026-11-21 in folder .*drop "
                                          r"matching pattern"):
        load_day(source, warehouse, VOICE, DAY, "run-1")


def test_late_records_and_missing_days_reach_the_facts(warehouse, source):
    # the UTC day's bounds: its first and last microsecond are the day's, a time with an
    # offset is placed by its UTC instant
    times = {"first": "2026-11-21T00:00:00Z", "last": "2026-11-21T23:59:59.999999Z",
             "before": "2026-11-20T23:59:59.999999Z", "offset": "2026-11-21T01:00:00+02:00",
             "after": "2026-11-22T00:00:00Z"}
    write(source, "voice_2026-11-21.csv", [pt_row("a")] + [
        pt_row(name, CallTime=time, AnswerTime="") for name, time in times.items()])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    facts = read_day_facts(warehouse, VOICE, DAY, dt.date(2026, 11, 18))
    assert facts.late_before == 2 and facts.late_after == 1
    assert facts.missing_days_before == [dt.date(2026, 11, 18), dt.date(2026, 11, 19),
                                         dt.date(2026, 11, 20)]
    assert facts.file_amounts == facts.warehouse_amounts == {
        ("EUR", "app-1"): Decimal("0.0125") * 6}


def test_a_call_is_in_the_warehouse_once_whatever_the_order_of_deliveries(warehouse, source):
    d20 = DAY - dt.timedelta(days=1)
    write(source, f"voice_{d20}.csv", [pt_row("keep", CallTime=f"{d20}T10:00:00Z",
                                              AnswerTime=""),
                                       pt_row("x", Amount="1", CallTime=f"{d20}T11:00:00Z",
                                              AnswerTime="")])
    load_day(source, warehouse, VOICE, d20, "run-1")
    resent = write(source, f"voice_{DAY}.csv", [pt_row("y"), pt_row("x", Amount="2")])
    load_day(source, warehouse, VOICE, DAY, "run-2")
    ((raw, reasons),) = warehouse.query("SELECT raw_line, reasons FROM cdr_rejects")
    assert raw == resent.read_text().splitlines()[2]  # the evidence: the corrected amount
    assert reasons == (f"duplicate id, already loaded for another day: x is in "
                       f"voice_{d20}.csv line 3 (cdr_date {d20})")

    (source.drop_dir / f"voice_{d20}.csv").unlink()  # the day re-delivered without x
    write(source, f"voice_{d20}.csv", [pt_row("keep", CallTime=f"{d20}T10:00:00Z",
                                              AnswerTime="")])
    load_day(source, warehouse, VOICE, d20, "run-3")
    ((call, day, amount),) = warehouse.query("SELECT call_id, cdr_date, amount FROM voice_cdrs "
                                             "WHERE call_id = 'x'")
    assert (call, day, Decimal(str(amount))) == ("x", DAY, Decimal("2"))
    assert warehouse.query("SELECT COUNT(*) FROM cdr_rejects") == [(0,)]
    assert warehouse.query(
        "SELECT cdr_date, rows_read, rows_loaded, rows_rejected FROM cdr_files "
        "ORDER BY cdr_date") == [(d20, 1, 1, 0), (DAY, 2, 2, 0)]
    (((ledger,),)) = warehouse.query("SELECT amount_totals FROM cdr_files WHERE cdr_date = ?",
                                     (DAY,))
    ((table_total,),) = warehouse.query("SELECT SUM(amount) FROM voice_cdrs WHERE cdr_date = ?",
                                        (DAY,))
    assert sum(decode_amounts(ledger).values()) == Decimal(str(table_total))  # money came back


def test_a_day_re_delivered_in_full_on_another_day_is_settled_page_by_page(
        warehouse, source, monkeypatch):
    """Every row of two files is a copy of an earlier day's: settled a few at a time, each
    rejected with its text and its first copy's place, none lost, none loaded twice."""
    monkeypatch.setattr(day_load, "SETTLE_ROWS", 4)
    d20 = DAY - dt.timedelta(days=1)
    calls = [f"call-{n:02}" for n in range(11)]
    write(source, f"voice_{d20}.csv", [pt_row(c, CallTime=f"{d20}T10:00:00Z", AnswerTime="")
                                       for c in calls])
    load_day(source, warehouse, VOICE, d20, "run-1")
    files = {f"voice_1_{DAY}.csv": calls[:6] + ["new-1"], f"voice_2_{DAY}.csv": calls[6:]}
    texts = {name: write(source, name, [pt_row(c, Amount="1.5") for c in ids]
                         ).read_text().splitlines() for name, ids in files.items()}
    load_day(source, warehouse, VOICE, DAY, "run-2")
    first_line = {c: n for n, c in enumerate(calls, start=2)}
    assert sorted(warehouse.query("SELECT source_file, source_line, raw_line, reasons FROM "
                                  "cdr_rejects WHERE cdr_date = ?", (DAY,))) == sorted(
        (name, n, texts[name][n - 1],
         f"duplicate id, already loaded for another day: {c} is in voice_{d20}.csv line "
         f"{first_line[c]} (cdr_date {d20})")
        for name, ids in files.items() for n, c in enumerate(ids, start=2) if c in first_line)
    assert warehouse.query("SELECT call_id FROM voice_cdrs WHERE cdr_date = ?",
                           (DAY,)) == [("new-1",)]
    assert sorted(warehouse.query("SELECT call_id FROM voice_cdrs_held")) == [
        (c,) for c in calls]
    assert sorted(warehouse.query("SELECT source_file, rows_read, rows_loaded, rows_rejected "
                                  "FROM cdr_files WHERE cdr_date = ?", (DAY,))) == [
        (f"voice_1_{DAY}.csv", 7, 1, 6), (f"voice_2_{DAY}.csv", 5, 0, 5)]
    ((ledger,),) = warehouse.query("SELECT amount_totals FROM cdr_files WHERE source_file = ?",
                                   (f"voice_1_{DAY}.csv",))
    assert decode_amounts(ledger) == {("EUR", "app-1"): Decimal("1.5")}  # new-1's alone


def test_copies_restored_together_each_return_to_their_own_file_with_their_money(
        warehouse, source):
    """Many copies held across files and days, restored by one re-delivery: each file's
    ledger gains exactly its own rows and money, and a second copy stays held."""
    d20, d22 = DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)
    at = {d: {"CallTime": f"{d}T10:00:00Z", "AnswerTime": ""} for d in (d20, DAY, d22)}
    write(source, f"voice_{d20}.csv", [pt_row(c, **at[d20]) for c in ("keep", "a", "b", "c")])
    load_day(source, warehouse, VOICE, d20, "run-1")
    first = write(source, f"voice_1_{DAY}.csv", [
        pt_row("a", Amount="2", Currency="USD", **at[DAY]),
        pt_row("b", Amount="3", ApplicationKey="app-2", **at[DAY])])
    second = write(source, f"voice_2_{DAY}.csv", [
        pt_row("z", Amount="11", **at[DAY]), pt_row("c", Amount="5", Currency="USD", **at[DAY])])
    load_day(source, warehouse, VOICE, DAY, "run-2")
    write(source, f"voice_{d22}.csv", [pt_row("a", Amount="7", **at[d22])])
    load_day(source, warehouse, VOICE, d22, "run-3")
    texts = {f.name: f.read_text().splitlines() for f in (first, second)}
    assert sorted(warehouse.query("SELECT source_file, source_line, raw_line FROM cdr_rejects "
                                  "WHERE cdr_date = ?", (DAY,))) == [
        (first.name, 2, texts[first.name][1]), (first.name, 3, texts[first.name][2]),
        (second.name, 3, texts[second.name][2])]

    (source.drop_dir / f"voice_{d20}.csv").unlink()  # re-delivered without a, b and c
    write(source, f"voice_{d20}.csv", [pt_row("keep", **at[d20])])
    load_day(source, warehouse, VOICE, d20, "run-4")
    assert sorted(warehouse.query("SELECT call_id, cdr_date FROM voice_cdrs")) == [
        ("a", DAY), ("b", DAY), ("c", DAY), ("keep", d20), ("z", DAY)]
    assert warehouse.query("SELECT call_id, cdr_date FROM voice_cdrs_held") == [("a", d22)]
    assert sorted(warehouse.query("SELECT source_file, rows_read, rows_loaded, rows_rejected "
                                  "FROM cdr_files")) == sorted([
        (first.name, 2, 2, 0), (second.name, 2, 2, 0), (f"voice_{d20}.csv", 1, 1, 0),
        (f"voice_{d22}.csv", 1, 0, 1)])
    for name in texts:  # the money the table holds, read apart from the ledger
        ((ledger,),) = warehouse.query("SELECT amount_totals FROM cdr_files WHERE "
                                       "source_file = ?", (name,))
        assert decode_amounts(ledger) == {
            (currency, app_key): Decimal(str(total)) for currency, app_key, total in
            warehouse.query("SELECT currency, application_key, SUM(amount) FROM voice_cdrs "
                            "WHERE source_file = ? GROUP BY 1, 2", (name,))}


def test_a_duplicate_across_the_day_s_files_names_its_original_and_keeps_its_text(
        warehouse, source):
    write(source, f"voice_a_{DAY}.csv", [pt_row("x")])
    copy = write(source, f"voice_b_{DAY}.csv", [pt_row("z"), pt_row("x", Amount="9")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    ((file, raw, reasons),) = warehouse.query("SELECT source_file, raw_line, reasons "
                                              "FROM cdr_rejects")
    assert (file, raw) == (copy.name, copy.read_text().splitlines()[2])
    assert reasons == (f"duplicate id, earlier in the same day: x is in voice_a_{DAY}.csv "
                       f"line 2 (cdr_date {DAY})")


def test_copies_within_and_across_the_day_s_files_are_settled_file_by_file(warehouse, source):
    """The day's files are one stream: copies held from both files are settled in file
    order, each named against the right original."""
    write(source, f"voice_a_{DAY}.csv", [pt_row("a"), pt_row("a")])
    write(source, f"voice_b_{DAY}.csv", [pt_row("a"), pt_row("b"), pt_row("b")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    assert sorted(warehouse.query("SELECT source_file, source_line, reasons FROM cdr_rejects")) == [
        (f"voice_a_{DAY}.csv", 3, "duplicate id, earlier in the same file: a is at line 2"),
        (f"voice_b_{DAY}.csv", 2, f"duplicate id, earlier in the same day: a is in "
                                  f"voice_a_{DAY}.csv line 2 (cdr_date {DAY})"),
        (f"voice_b_{DAY}.csv", 4, "duplicate id, earlier in the same file: b is at line 3")]
    assert sorted(warehouse.query(
        "SELECT source_file, rows_read, rows_loaded, rows_rejected FROM cdr_files")) == [
        (f"voice_a_{DAY}.csv", 2, 1, 1), (f"voice_b_{DAY}.csv", 3, 1, 2)]


def test_a_day_s_second_file_failing_rolls_back_the_whole_day(warehouse, source):
    import threading

    write(source, f"voice_a_{DAY}.csv", [pt_row("a")])
    second = write(source, f"voice_b_{DAY}.csv", [pt_row("b")])
    load_day(source, warehouse, VOICE, DAY, "run-1")
    write(source, f"voice_a_{DAY}.csv", [pt_row("c")])
    second.unlink()
    (source.drop_dir / f"voice_b_{DAY}.csv.gz").write_bytes(b"\x1f\x8b broken gzip")
    with pytest.raises(CdrFileError, match="cannot decompress"):
        load_day(source, warehouse, VOICE, DAY, "run-2")
    assert sorted(warehouse.query("SELECT call_id, load_id FROM voice_cdrs")) == [
        ("a", "run-1"), ("b", "run-1")]
    assert sorted(warehouse.query("SELECT source_file, rows_loaded, load_id FROM cdr_files")) == [
        (f"voice_a_{DAY}.csv", 1, "run-1"), (f"voice_b_{DAY}.csv", 1, "run-1")]
    assert not [t.name for t in threading.enumerate() if t.name.startswith("cdr-reader")]


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_a_new_process_does_not_lock_tables_another_load_is_writing(warehouse_url):
    """Runs in parallel: a run starting (its table check) while another run's day is open
    must neither wait for it nor deadlock with it (ALTER TABLE would lock every table)."""
    import threading

    open_warehouse(warehouse_url).ensure_tables()
    first = open_warehouse(warehouse_url)
    with first.connect() as con:
        first.execute(con, "DELETE FROM cdr_rejects WHERE cdr_date = ?", (DAY,))
        for table in ("voice_cdrs", "voice_cdrs_held"):
            first.execute(con, f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
        done = threading.Event()
        starter = threading.Thread(
            target=lambda: (open_warehouse(warehouse_url).ensure_tables(), done.set()))
        starter.start()
        assert done.wait(timeout=30), "the table check waited for the open load"
    starter.join()


def test_a_transaction_commits_its_writes_together_or_none(warehouse):
    from cdr_workflow.warehouse.tables import KPIS

    def kpi(day: dt.date, value: str) -> None:
        where = {"kind": "voice", "cdr_date": day}
        warehouse.replace_rows(KPIS, where, KPIS.rows([{
            "dimension": "all", "dimension_value": "all", "measure": "attempts",
            "value": Decimal(value)}], where))

    def stored() -> dict[dt.date, Decimal]:
        return {d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)): Decimal(v)
                for d, v in warehouse.query("SELECT cdr_date, value FROM cdr_kpis_daily")}

    with warehouse.transaction():
        kpi(DAY, "1")
        assert stored() == {DAY: 1}  # its own writes, read back inside it
        kpi(DAY + dt.timedelta(days=1), "2")
    assert stored() == {DAY: 1, DAY + dt.timedelta(days=1): 2}
    with pytest.raises(ZeroDivisionError), warehouse.transaction():
        kpi(DAY, "10")
        kpi(DAY + dt.timedelta(days=1), "20")
        1 / 0  # noqa: B018 - a failure after both writes
    assert stored() == {DAY: 1, DAY + dt.timedelta(days=1): 2}


def test_a_local_file_is_read_back_in_place_and_a_change_meanwhile_rolls_the_day_back(
        warehouse, source, tmp_path):
    import gzip
    import io

    from cdr_workflow.errors import CdrFileError
    from cdr_workflow.load import TextCopy

    path = write(source, "voice_2026-11-21.csv", [pt_row("a", Amount="1.5")])
    (cdr_file,) = source.list().files
    assert TextCopy.of(source, cdr_file, tmp_path / "copy.csv").path == path  # not copied
    gz = source.drop_dir / "voice_2026-11-22.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    gz_file = next(f for f in source.list().files if f.relative_path.endswith(".gz"))
    assert TextCopy.of(source, gz_file, tmp_path / "copy.csv").path == tmp_path / "copy.csv"

    class Redelivered(LocalSource):
        """The file is replaced just after the reader has taken its bytes."""

        def open(self, cdr_file):
            data = super().open(cdr_file).read()
            write(source, "voice_2026-11-21.csv", [pt_row("a", Amount="1.5"),
                                                    pt_row("b", Amount="99")])
            return io.BytesIO(data)

    with pytest.raises(CdrFileError, match="changed while it was loaded"):
        load_day(Redelivered(source.drop_dir, source.pattern), warehouse, VOICE, DAY, "run-1")
    assert counts(warehouse) == (0, 0, 0)
    load_day(source, warehouse, VOICE, DAY, "run-2")  # the new file, next time
    assert counts(warehouse) == (2, 0, 1)


def test_a_path_duckdb_would_take_as_a_pattern_is_copied_not_read_in_place(warehouse, tmp_path):
    drop, lookalike = tmp_path / "in[1]", tmp_path / "in1"  # `in[1]` as a pattern is `in1`
    for folder, amount in ((drop, "1.5"), (lookalike, "99")):
        folder.mkdir()
        write(LocalSource(folder, re.compile(DEFAULT_FILE_PATTERN)), "voice_2026-11-21.csv",
              [pt_row("a", Amount=amount)])
    load_day(LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN)), warehouse, VOICE, DAY, "r")
    ((totals,),) = warehouse.query("SELECT amount_totals FROM cdr_files")
    assert decode_amounts(totals) == {("EUR", "app-1"): Decimal("1.5")}


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_indexes_ids_by_hash_and_replaces_an_earlier_b_tree(warehouse_url):
    """Sinch's call ids are random UUIDs, which a B-tree takes at random places: the id is
    indexed by hash, and a warehouse an earlier release made has its B-tree replaced."""
    earlier = open_warehouse(warehouse_url)
    earlier.ensure_tables()
    with earlier.connect() as con:
        earlier.execute(con, "DROP INDEX voice_cdrs_call_id_hash")
        earlier.execute(con, "CREATE INDEX voice_cdrs_call_id_idx ON voice_cdrs (call_id)")
    warehouse = open_warehouse(warehouse_url)
    warehouse.ensure_tables()
    with warehouse.connect() as con:
        indexes = dict(warehouse.execute(
            con, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'voice_cdrs'"))
    assert "voice_cdrs_call_id_idx" not in indexes
    assert "USING hash (call_id)" in indexes["voice_cdrs_call_id_hash"]


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_summarises_earlier_days_for_its_date_index(warehouse_url, source):
    """A page range the BRIN index has not summarised is read by every query for any day:
    a load first summarises the pages earlier loads appended, not waiting for autovacuum."""
    write(source, f"voice_{DAY}.csv", [pt_row(f"id-{n}") for n in range(5000)])
    write(source, f"voice_{DAY + dt.timedelta(days=1)}.csv", [pt_row("later")])
    warehouse = open_warehouse(warehouse_url)
    load_day(source, warehouse, VOICE, DAY, "run-1")
    ((pages,),) = warehouse.query("SELECT pg_relation_size('voice_cdrs') / 8192")
    assert pages > 128, "the day fills more than one page range"
    load_day(source, warehouse, VOICE, DAY + dt.timedelta(days=1), "run-2")
    assert warehouse.query(
        "SELECT brin_summarize_new_values('voice_cdrs_cdr_date_brin'::regclass)") == [(0,)]


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_has_statistics_of_the_columns_the_day_is_grouped_by(warehouse_url, source):
    """A load refreshes the planner's figures of the columns the day's checks, KPIs and
    invoices group by: without them PostgreSQL guesses thousands of groups and sorts the day
    on disk, where a hash of a few groups serves."""
    write(source, f"voice_{DAY}.csv", [pt_row(f"id-{n}") for n in range(200)])
    warehouse = open_warehouse(warehouse_url)
    load_day(source, warehouse, VOICE, DAY, "run-1")
    analysed = {column for (column,) in warehouse.query(
        "SELECT attname FROM pg_stats WHERE tablename = 'voice_cdrs'")}
    assert {"currency", "application_key", "result", "call_type"} <= analysed
    assert set(VOICE.grouped_columns) <= analysed


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_load_statistics_come_from_a_small_sample_unless_a_column_sets_its_own(
        warehouse_url, source):
    """A load's ANALYZE samples 3,000 rows, not the default 30,000 (which read nearly every
    page of a 1M-row day): a column's histogram has 11 bounds, not 101. A column given its
    own statistics target by the warehouse's owner keeps it."""
    from cdr_workflow.warehouse.postgres import LOAD_STATISTICS_TARGET

    write(source, f"voice_{DAY}.csv", [pt_row(f"id-{n}") for n in range(5000)])
    warehouse = open_warehouse(warehouse_url)
    warehouse.ensure_tables()
    warehouse.query("ALTER TABLE voice_cdrs ALTER COLUMN call_id SET STATISTICS 200")
    warehouse.query("ALTER TABLE voice_cdrs SET (autovacuum_enabled = off)")  # its own ANALYZE
    load_day(source, warehouse, VOICE, DAY, "run-1")
    bounds = dict(warehouse.query(
        "SELECT attname, array_length(histogram_bounds, 1) FROM pg_stats "
        "WHERE tablename = 'voice_cdrs' AND attname IN ('source_line', 'call_id')"))
    assert bounds == {"source_line": LOAD_STATISTICS_TARGET + 1, "call_id": 201}


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_loads_as_a_role_that_does_not_own_the_tables(warehouse_url, source):
    """Where the tables' owner created them and loads run as a role with only the rights to
    read and write rows, a load still works, its duplicates found: it runs no DDL, and
    leaves the date index's summary (which only the owner may make) to autovacuum."""
    open_warehouse(warehouse_url).ensure_tables()
    role = f"cdr_loader_{warehouse_url.rsplit('_', 1)[-1]}"
    owner = open_warehouse(warehouse_url)
    owner.query(f"CREATE ROLE {role} LOGIN")
    try:
        owner.query(f"GRANT USAGE ON SCHEMA public TO {role}")
        owner.query(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                    f"TO {role}")
        loader = open_warehouse(warehouse_url.replace("//postgres@", f"//{role}@"))
        write(source, f"voice_{DAY - dt.timedelta(days=1)}.csv", [pt_row(
            "dup", CallTime=f"{DAY - dt.timedelta(days=1)}T10:00:00Z", AnswerTime="")])
        write(source, f"voice_{DAY}.csv", [pt_row(f"id-{n}") for n in range(5000)]
              + [pt_row("dup")])
        load_day(source, loader, VOICE, DAY - dt.timedelta(days=1), "run-1")
        result = load_day(source, loader, VOICE, DAY, "run-2")
        assert (result.rows_loaded, result.rows_rejected) == (5000, 1)
        assert read_day_facts(loader, VOICE, DAY, DAY).duplicate_ids_in_table == 0
    finally:
        owner.query(f"DROP OWNED BY {role}")
        owner.query(f"DROP ROLE {role}")


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_stream_sends_a_column_whose_first_value_comes_late(warehouse_url):
    """The COPY leaves out the columns the stream has held no value in so far: a batch with
    a value in one of them must still arrive whole, and every batch after it. An empty batch
    fills no column: it must not start a COPY of none (PostgreSQL rejects its syntax), and
    rows without a value still arrive."""
    warehouse = open_warehouse(warehouse_url)
    warehouse.ensure_tables()
    schema = table_of(VOICE).arrow_schema

    def batch(first_id: int, custom: str | None, rows: int = 3) -> pa.RecordBatch:
        given = {"call_id": [f"id-{n}" for n in range(first_id, first_id + rows)],
                 "custom": [custom] * rows, "cdr_date": [DAY] * rows}
        return pa.RecordBatch.from_arrays([pa.array(given.get(f.name, [None] * rows), f.type)
                                           for f in schema], schema=schema)

    no_values = pa.RecordBatch.from_arrays([pa.nulls(2, f.type) for f in schema], schema=schema)
    stream = [batch(0, None, rows=0), no_values, batch(0, None), batch(3, "late"),
              batch(6, None, rows=0), batch(6, None), batch(9, "again")]
    with warehouse.connect() as con:
        warehouse.append_stream(con, "voice_cdrs", pa.RecordBatchReader.from_batches(
            schema, iter(stream)))
    assert warehouse.query("SELECT custom, COUNT(*) FROM voice_cdrs GROUP BY custom "
                           "ORDER BY custom") == [("again", 3), ("late", 3), (None, 8)]
    assert warehouse.query("SELECT COUNT(DISTINCT call_id), COUNT(cdr_date) FROM "
                           "voice_cdrs") == [(12, 12)]


@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_postgres_loads_of_a_kind_take_turns(warehouse_url, source):
    """Two loads of one day at once (a sensor's run and a user's): the second waits for the
    first to commit, then replaces its rows, instead of adding its own beside them."""
    import threading

    write(source, "voice_2026-11-21.csv", [pt_row("a")])
    warehouse = open_warehouse(warehouse_url)
    second: dict[str, object] = {}

    def load_the_day_again() -> None:
        try:
            second["result"] = load_day(source, open_warehouse(warehouse_url), VOICE, DAY,
                                        "run-2")
        except Exception as exc:  # noqa: BLE001 - asserted below
            second["error"] = exc

    with day_load.day_load(warehouse, VOICE, DAY, "run-1") as first:
        other = threading.Thread(target=load_the_day_again)
        other.start()
        other.join(timeout=3)
        assert other.is_alive(), "the second load waits for the first"
        first.add_rows([(f"voice_{DAY}.csv", pa.table({
            "call_type": ["phone_terminated"], "call_id": ["a"], "source_line": [2]}))])
        first.add_file(day_load.FileLoad("voice", DAY, f"voice_{DAY}.csv", "", 0, "", 1))
    other.join(timeout=60)
    assert "error" not in second, second.get("error")
    assert warehouse.query("SELECT call_id, load_id FROM voice_cdrs") == [("a", "run-2")]


@pytest.mark.parametrize("pseudonymised", [False, True])
def test_many_rejects_of_a_file_land_whole_from_disk(warehouse, source, monkeypatch,
                                                      pseudonymised):
    """A file's rejects wait on disk until its rows are in, and are appended in tables of a
    bounded size: every one lands with its line, reason and (unless the numbers are
    pseudonymised) its text, and the file's money less theirs is what was loaded."""
    import functools

    import cdr_workflow.load as load
    from cdr_workflow.reader import read_cdr_file

    monkeypatch.setattr(load, "REJECTS_AT_ONCE", 3)  # and blocks of a few lines each
    monkeypatch.setattr(load, "read_cdr_file", functools.partial(read_cdr_file,
                                                                 block_bytes=500))
    rows = [pt_row(f"c{n}", Amount="1.5") for n in range(20)]
    text = [line(r) + (";" if n % 2 else "") for n, r in enumerate(rows)]  # a field too many
    path = source.drop_dir / "voice_2026-11-21.csv"
    path.write_text(PT_HEADER + "\n" + "".join(f"{t}\n" for t in text), encoding="utf-8")
    result = load_day(source, warehouse, VOICE, DAY, "run-1",
                      pseudonymisation_key=b"k" * 32 if pseudonymised else None)
    assert (result.rows_loaded, result.rows_rejected) == (10, 10)
    rejects = warehouse.query("SELECT source_line, raw_line, reasons FROM cdr_rejects "
                              "ORDER BY source_line")
    assert rejects == [(n + 2, None if pseudonymised else text[n], "expected 15 fields, found 16")
                       for n in range(1, 20, 2)]
    ((totals,),) = warehouse.query("SELECT amount_totals FROM cdr_files")
    assert decode_amounts(totals) == {("EUR", "app-1"): Decimal("15")}

"""Hostile input: every corpus file loads, quarantines or fails exactly as `expected.json` says,
through the real reader and warehouse; and the pipeline-level attacks around it."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import PT_HEADER, line, pt_row

from cdr_workflow.kinds import KINDS, VOICE
from cdr_workflow.load import load_day
from cdr_workflow.reader import CdrFileError
from cdr_workflow.sources import DEFAULT_FILE_PATTERN
from cdr_workflow.sources.local import LocalSource

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict] = json.loads((CORPUS / "expected.json").read_text())
DAY = dt.date(2026, 11, 21)


def source_with(tmp_path: Path, *names: str) -> LocalSource:
    drop = tmp_path / "drop"
    drop.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(CORPUS / name, drop / name)
    return LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))


def test_the_corpus_is_large_enough_and_on_disk():
    assert len(EXPECTED) >= 30
    assert all((CORPUS / name).exists() for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name, tmp_path, warehouse):
    expected = EXPECTED[name]
    kind = name.split("_")[0]
    source = source_with(tmp_path, name)
    if "error" in expected:
        with pytest.raises(CdrFileError, match=re.escape(expected["error"])) as raised:
            load_day(source, warehouse, KINDS[kind], DAY, "run-1")
        assert name in str(raised.value)
        assert warehouse.query("SELECT COUNT(*) FROM cdr_files") == [(0,)]
        return
    result = load_day(source, warehouse, KINDS[kind], DAY, "run-1")
    assert (result.rows_loaded, result.rows_rejected) == (expected["loaded"],
                                                          expected["rejected"])
    assert result.rows_read == result.rows_loaded + result.rows_rejected
    reasons = [r for (r,) in warehouse.query(
        "SELECT reasons FROM cdr_rejects ORDER BY source_line")]
    for wanted, got in zip(expected["reasons"], reasons, strict=True):
        assert wanted in got
    lines = [n for (n,) in warehouse.query(
        f"SELECT source_line FROM {kind}_cdrs UNION ALL SELECT source_line FROM cdr_rejects")]
    assert len(lines) == len(set(lines)), "each line is loaded or rejected, once"


def test_values_survive_the_hostile_dialects(tmp_path, warehouse):
    source = source_with(tmp_path, "voice_embedded_line_breaks_2026-11-21.csv",
                         "voice_huge_custom_2026-11-21.csv", "voice_na_and_empty_2026-11-21.csv")
    # three files, one day: ids repeat across them, so the later copies are rejected
    load_day(source, warehouse, VOICE, DAY, "run-1")
    customs = dict(warehouse.query("SELECT source_file, custom FROM voice_cdrs "
                                   "WHERE call_id = 'c1'"))
    assert customs == {"voice_embedded_line_breaks_2026-11-21.csv":
                       "line one\nline two\r\nline three"}
    ((duplicates,),) = warehouse.query(
        "SELECT COUNT(*) FROM cdr_rejects WHERE reasons LIKE 'duplicate id%'")
    assert duplicates == 3  # c1 in all three files, c2 in two


def test_sql_in_a_header_is_data_not_sql(tmp_path, warehouse):
    source = source_with(tmp_path, "voice_sql_in_header_2026-11-21.csv")
    load_day(source, warehouse, VOICE, DAY, "run-1")
    ((extra,),) = warehouse.query("SELECT extra_fields FROM voice_cdrs")
    assert "DROP TABLE" in json.loads(extra).popitem()[0]


def test_the_same_file_delivered_twice_loads_once(tmp_path, warehouse):
    source = source_with(tmp_path, "voice_crlf_2026-11-21.csv")
    shutil.copy(source.drop_dir / "voice_crlf_2026-11-21.csv",
                source.drop_dir / "voice_crlf_copy_2026-11-21.csv")
    result = load_day(source, warehouse, VOICE, DAY, "run-1")
    assert (result.rows_loaded, result.rows_rejected) == (2, 2)


def test_a_replaced_file_replaces_the_day(tmp_path, warehouse):
    source = source_with(tmp_path, "voice_crlf_2026-11-21.csv")
    load_day(source, warehouse, VOICE, DAY, "run-1")
    (source.drop_dir / "voice_crlf_2026-11-21.csv").write_text(
        f"{PT_HEADER}\n{line(pt_row('new'))}\n")
    load_day(source, warehouse, VOICE, DAY, "run-2")
    assert warehouse.query("SELECT call_id FROM voice_cdrs") == [("new",)]


def test_paths_stay_inside_the_drop_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "voice_2026-11-21.csv").write_text(f"{PT_HEADER}\n{line(pt_row())}\n")
    source = source_with(tmp_path)
    (source.drop_dir / "voice_link_2026-11-21.csv").symlink_to(outside / "voice_2026-11-21.csv")
    (source.drop_dir / "sub").mkdir()
    (source.drop_dir / "sub" / "x..voice_2026-11-22.csv").write_text("x")
    listing = source.list()
    assert [f.relative_path for f in listing.files] == ["sub/x..voice_2026-11-22.csv"]
    escaped = listing.files[0].__class__(**{**vars(listing.files[0]),
                                           "relative_path": "../outside/voice_2026-11-21.csv"})
    with pytest.raises(ValueError, match="outside"):
        source.open(escaped)

"""Which rows of a day's stream may repeat an id: hashes, the seen set, and the exact settling
of rows whose hash was seen (a collision must load, a real copy must be held)."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pytest
from helpers import PT_HEADER, line, pt_row
from hypothesis import given
from hypothesis import strategies as st

from cdr_workflow.kinds import VOICE
from cdr_workflow.load import load_day
from cdr_workflow.seen_ids import SeenIds, among, id_hashes
from cdr_workflow.sources import DEFAULT_FILE_PATTERN
from cdr_workflow.sources.local import LocalSource
from cdr_workflow.warehouse import day_load

DAY = dt.date(2026, 11, 21)
ids = st.text(st.characters(codec="utf-8"), max_size=90)


@given(st.lists(st.lists(ids, max_size=30), max_size=6))
def test_seen_flags_every_repeat_across_and_within_batches(batches):
    seen, earlier = SeenIds(), set()
    for batch in batches:
        flags = seen.add(id_hashes(pa.array(batch, pa.string())))
        for value, flag in zip(batch, flags, strict=True):
            if value in earlier:
                assert flag, f"{value!r} was seen before and is not flagged"
            earlier.add(value)


@given(st.lists(ids, min_size=1, max_size=20))
def test_an_id_hashes_alike_whatever_else_is_in_its_batch(batch):
    together = id_hashes(pa.array(batch, pa.string()))
    alone = [id_hashes(pa.array([value], pa.string()))[0] for value in batch]
    assert list(together) == alone


def test_hashes_do_not_depend_on_how_the_ids_are_laid_out():
    values = ["a", None, "", "é" * 40, "x" * 70 + "1", "x" * 70 + "2", "call-0001"]
    whole = id_hashes(pa.array(values))
    assert (id_hashes(pa.chunked_array([pa.array(values[:3]), pa.array(values[3:])]))
            == whole).all()
    assert (id_hashes(pa.array(["pad", *values]).slice(1)) == whole).all()
    assert (id_hashes(pa.array(values, pa.large_string())) == whole).all()
    assert len(np.unique(whole)) == len(values), "distinct ids, distinct hashes"


@given(st.lists(st.integers(0, 2**64 - 1), max_size=40),
       st.lists(st.integers(0, 2**64 - 1), max_size=40))
def test_the_seen_hashes_are_each_hash_once_in_order_and_others_are_found_among_them(first, second):
    seen = SeenIds()
    seen.add(np.array(first, np.uint64))
    kept = seen.hashes()
    assert kept.tolist() == sorted({h or 1 for h in first}), "0 is kept as 1"
    assert kept.tolist() == np.unique(SeenIds.storable(np.array(first, np.uint64))).tolist()
    others = np.array(second, np.uint64)
    assert among(others, kept).tolist() == [h in set(kept.tolist()) for h in second]


def test_distinct_ids_are_not_flagged():
    seen = SeenIds()
    flags = np.concatenate([seen.add(id_hashes(pa.array([f"pt-{n:09d}" for n in range(
        start, start + 5000)]))) for start in range(0, 50_000, 5000)])
    assert not flags.any()


# a few rows cut out of the stream; many, settled a few at a time
@pytest.mark.parametrize(("distinct", "settled_at_once"), [(3, 1000), (150, 7)])
def test_a_hash_collision_loads_the_row_and_a_real_copy_is_held(tmp_path, warehouse,
                                                                 monkeypatch, distinct,
                                                                 settled_at_once):
    """Every id hashing alike makes every row after the first a candidate: the warehouse must
    settle them exactly, loading the distinct ids and holding only the real copy."""
    monkeypatch.setattr(day_load, "id_hashes", lambda ids: np.zeros(len(ids), np.uint64))
    monkeypatch.setattr(day_load, "SETTLE_ROWS", settled_at_once)
    drop = tmp_path / "drop"
    drop.mkdir()
    names = ["a", "b", "c", *(f"x{n}" for n in range(distinct - 3))]
    rows = [pt_row(name) for name in names] + [pt_row("a", Amount="7")]
    (drop / f"voice_{DAY}.csv").write_text(
        PT_HEADER + "\n" + "".join(line(r) + "\n" for r in rows))
    source = LocalSource(drop, re.compile(DEFAULT_FILE_PATTERN))
    result = load_day(source, warehouse, VOICE, DAY, "run-1")
    assert (result.rows_loaded, result.rows_rejected) == (distinct, 1)
    assert sorted(warehouse.query("SELECT call_id FROM voice_cdrs")) == sorted(
        (name,) for name in names)
    assert warehouse.query("SELECT source_line, reasons FROM cdr_rejects") == [
        (distinct + 2, "duplicate id, earlier in the same file: a is at line 2")]

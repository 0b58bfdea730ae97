"""One kind's day replaced in one transaction, with every later copy of an id rejected.

The day's rows, rejects and ledger are deleted first. The rows of all the day's files are then
appended in one streamed statement; a row whose id hash the day has seen is held back from the
stream and settled exactly after it: a later copy of an id is held instead and rejected, naming
where the original is. `finish` does the same for copies of ids another day holds (one look for
the day), restores held copies whose original is gone, writes the
`cdr_files` ledger and checks `rows_read = rows_loaded + rows_rejected` before the transaction
commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cdr_workflow.header import SchemaDrift
from cdr_workflow.kinds import Kind
from cdr_workflow.reader import Reject, without_rows
from cdr_workflow.seen_ids import SeenIds, id_hashes, stored_id_hashes
from cdr_workflow.spool import Spool
from cdr_workflow.warehouse.base import Warehouse, among_days, as_date, other_days
from cdr_workflow.warehouse.tables import FILES, HELD_TABLES, REJECTS, TOTAL_TYPE, table_of

DUPLICATE_OTHER_DAY = "duplicate id, already loaded for another day"
DUPLICATE_SAME_DAY = "duplicate id, earlier in the same day"
DUPLICATE_SAME_FILE = "duplicate id, earlier in the same file"

SETTLE_ROWS = 2 * 122_880  # rows whose id hash was seen, looked up at once: bounds memory

AmountKey = tuple[str | None, str | None]  # (currency, application key)
RawLines = Callable[[str, set[int]], dict[int, str]]


@dataclass(frozen=True)
class FileLoad:
    """One file of a day's load, as the ledger `cdr_files` records it."""

    kind: str
    cdr_date: dt.date
    source_file: str
    source_uri: str
    size_bytes: int
    fingerprint: str
    rows_read: int
    rows_loaded: int = 0
    rows_rejected: int = 0
    amount_totals: dict[AmountKey, Decimal] = field(default_factory=dict)
    schema_drift: SchemaDrift = SchemaDrift()

    @property
    def balances(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_rejected


@contextmanager
def day_load(warehouse: Warehouse, kind: Kind, day: dt.date, load_id: str
             ) -> Iterator[DayLoad]:
    """One transaction replacing a kind's day. Commits on success, rolls back on error."""
    with warehouse.connect() as con:
        load = DayLoad(warehouse, con, kind, day, load_id)
        load.begin()
        yield load
        load.finish()


class DayLoad:
    """The open transaction of one kind-day load; see `day_load`."""

    def __init__(self, warehouse: Warehouse, con: Any, kind: Kind, day: dt.date, load_id: str):
        self.warehouse, self.con, self.kind, self.day, self.load_id = (
            warehouse, con, kind, day, load_id)
        self.table, self.held = table_of(kind), HELD_TABLES[kind.name]
        self.files: list[FileLoad] = []
        self.raw_lines: RawLines | None = None  # set by the loader: file, lines → their text
        self._amounts: dict[str, Future[dict[AmountKey, Decimal]]] = {}  # by their reader
        self._duplicates: dict[str, dict[AmountKey, Decimal]] = {}  # money of later copies
        self._seen = SeenIds()  # the day's ids so far
        self._statistics_fresh = True  # the planner's figures: stale once the day is streamed

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.warehouse.execute(self.con, sql, params)

    def begin(self) -> None:
        self.warehouse.take_turn_to_load(self.con, self.table.name)
        self.warehouse.catch_up(self.con, self.table.name)
        for table in (self.table, self.held):
            self._run(f"DELETE FROM {table.name} WHERE cdr_date = ?", (self.day,))
        for table in (REJECTS, FILES):
            self._run(f"DELETE FROM {table.name} WHERE kind = ? AND cdr_date = ?",
                      (self.kind.name, self.day))

    def add_rows(self, rows_of_files: Iterable[tuple[str, pa.Table]]) -> None:
        """Append the day's rows, each table tagged with its file, streamed in one statement
        for all files: a voice day is typically four (a 1M-row day in four files, DuckDB:
        4.3-5.1 s in a statement a file, 3.3-3.5 s in one). A later copy of an id in the day
        (appended before, or earlier in the stream) is not appended but held, as a reject
        naming where its original is: rows whose id hash was seen are kept out of the stream
        (spooled to disk: a file delivered twice makes millions) and looked up once it ends,
        file by file in the stream's order, so the day never deletes from its own rows
        (DuckDB would rewrite the whole appended day at commit). Other days' copies: see
        `finish`."""
        failure: list[Exception] = []  # the reader's error, as the engine sees another
        with Spool(self.table.arrow_schema) as candidates:

            def first_copies() -> Iterator[pa.RecordBatch]:
                try:
                    for source_file, rows in rows_of_files:
                        if not rows.num_rows:
                            continue
                        hashes = id_hashes(rows.column(self.kind.id_column))
                        rows = self._with_lineage(source_file, rows, hashes)
                        seen = self._seen.add(hashes)
                        if seen.any():
                            candidates.add(rows.filter(pa.array(seen)))
                        yield from without_rows(rows, seen).to_batches()
                except Exception as exc:
                    failure.append(exc)
                    raise

            stream = pa.RecordBatchReader.from_batches(self.table.arrow_schema, first_copies())
            try:
                self.warehouse.append_stream(self.con, self.table.name, stream)
            except Exception as exc:
                if failure and failure[0] is not exc:
                    raise failure[0] from None
                raise
            self._statistics_fresh = False
            if candidates.rows:
                self._refresh_statistics()  # for the looks
            for rows in candidates.tables(SETTLE_ROWS):
                for source_file, rows_of_file in _by_file(rows):
                    self._settle(source_file, rows_of_file)

    def _settle(self, source_file: str, rows: pa.Table) -> None:
        """Rows whose id hash was seen: held when an earlier copy is in the day, else (a hash
        collision) appended."""
        copies = self._later_copies(source_file, rows)
        if copies:
            self._hold(source_file, rows, copies)
            keep = np.ones(rows.num_rows, dtype=bool)
            keep[list(copies)] = False
            rows = rows.filter(pa.array(keep))
        if rows.num_rows:
            self.warehouse.append(self.con, self.table.name, rows)

    def _later_copies(self, source_file: str, rows: pa.Table) -> dict[int, str]:
        """Row → the duplicate reason, for each row whose id has an earlier copy in the day:
        appended before (first by file, line), or earlier among these rows."""
        table, key = self.table.name, self.kind.id_column
        self._scratch("cdr_batch_ids", "row_index BIGINT, id VARCHAR", pa.table({
            "row_index": pa.array(np.arange(rows.num_rows), pa.int64()),
            "id": rows.column(key)}))
        originals = self._run(f"""SELECT b.row_index, b.id, o.source_file, o.source_line
              FROM cdr_batch_ids b JOIN (
              SELECT {key}, source_file, source_line, ROW_NUMBER() OVER (
                PARTITION BY {key} ORDER BY source_file, source_line) AS copy_number
              FROM {table} WHERE cdr_date = ? AND {key} IN (SELECT id FROM cdr_batch_ids)) o
              ON o.{key} = b.id AND o.copy_number = 1""", (self.day,))
        reasons = {int(row): self._duplicate_reason(value, file, int(line), self.day,
                                                    source_file)
                   for row, value, file, line in originals}
        ids = rows.column(key).combine_chunks()
        counts = pc.value_counts(ids)
        repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        if len(repeated):  # later copies among these rows: name the first one's line
            first: dict[str, int] = {}
            lines = rows.column("source_line").to_pylist()
            for row in np.flatnonzero(pc.is_in(ids, repeated).to_numpy(zero_copy_only=False)):
                value = ids[int(row)].as_py()
                if value in first:
                    reasons.setdefault(int(row), self._duplicate_reason(
                        value, source_file, lines[first[value]], self.day, source_file))
                else:
                    first[value] = int(row)
        return reasons

    def _scratch(self, name: str, columns: str, rows: pa.Table) -> None:
        """A temporary table of this session holding just `rows`."""
        self._run(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
        self._run(f"DELETE FROM {name}")
        self.warehouse.append(self.con, name, rows, temporary=True)

    def _duplicate_reason(self, value: str, file: str, line: int, day: dt.date,
                          copy_file: str) -> str:
        if day != self.day:
            return f"{DUPLICATE_OTHER_DAY}: {value} is in {file} line {line} (cdr_date {day})"
        if file == copy_file:
            return f"{DUPLICATE_SAME_FILE}: {value} is at line {line}"
        return f"{DUPLICATE_SAME_DAY}: {value} is in {file} line {line} (cdr_date {day})"

    def _hold(self, source_file: str, rows: pa.Table, copies: dict[int, str]) -> None:
        """Later copies: rejects with their text, held whole, and their
        money taken off what the file's text holds for the lines accepted."""
        order = sorted(copies)
        held = rows.take(pa.array(order, pa.int64()))
        reasons = [copies[i] for i in order]
        self.add_rejects(source_file, (self._duplicate_rejects(
            source_file, held.column("source_line").to_pylist(), reasons),))
        self.warehouse.append(self.con, self.held.name, held.append_column(
            "held_because", pa.array(reasons, pa.string())))
        if self.kind.has_amounts:
            money = self._duplicates.setdefault(source_file, {})
            sums = held.select(["currency", "application_key"]).append_column(
                "amount", held.column("amount").cast(TOTAL_TYPE)).group_by(
                ["currency", "application_key"], use_threads=False).aggregate(
                [("amount", "sum")])
            for currency, app_key, amount in zip(*(sums.column(c).to_pylist() for c in (
                    "currency", "application_key", "amount_sum")), strict=True):
                if amount is not None:
                    money[(currency, app_key)] = (money.get((currency, app_key), Decimal(0))
                                                  + amount)

    def _duplicate_rejects(self, source_file: str, lines: list[int], reasons: list[str]
                           ) -> pa.Table:
        """Later copies as rejects (`reject_rows`), with their text from the file read (the
        stream has ended, so every file's copy is whole): duplicates were valid lines, and
        the text is the evidence of what was sent twice."""
        texts = self.raw_lines(source_file, set(lines)) if self.raw_lines else {}
        return reject_table(lines, [texts.get(n) for n in lines], reasons)

    def add_rejects(self, source_file: str, rejects: list[Reject] | Iterable[pa.Table]
                    ) -> None:
        """Rejects of a file, as `Reject`s or as tables of their `reject_rows`, appended in
        one statement."""
        if isinstance(rejects, list):
            if not rejects:
                return
            rejects = [reject_rows(rejects)]
        constants = {"kind": self.kind.name, "cdr_date": self.day, "source_file": source_file,
                     "load_id": self.load_id}
        self.warehouse.append_stream(self.con, REJECTS.name, pa.RecordBatchReader.from_batches(
            REJECTS.arrow_schema, (batch for rows in rejects
                                   for batch in REJECTS.rows_of(rows, constants).to_batches())))

    def add_file(self, file: FileLoad,
                 amounts: Future[dict[AmountKey, Decimal]] | None = None) -> None:
        """A file read in full; its amount totals (`amounts`, or else its `amount_totals`) are
        what its text holds for the lines accepted, read independently of the rows appended:
        a future, so that reading runs while the day's duplicates are settled."""
        self.files.append(file)
        if amounts is None:
            amounts = Future()
            amounts.set_result(dict(file.amount_totals))
        self._amounts[file.source_file] = amounts

    def _with_lineage(self, source_file: str, rows: pa.Table, hashes: np.ndarray
                      ) -> pa.Table:
        if self.warehouse.searches_by_id_hash:
            rows = rows.append_column("id_hash", stored_id_hashes(hashes))
        return self.table.rows_of(rows, {"cdr_date": self.day, "source_file": source_file,
                                         "load_id": self.load_id})

    def _refresh_statistics(self) -> None:
        """Of the columns the day's queries look up by, and those its checks and reports
        group by: without them PostgreSQL guesses thousands of groups where a day has a few
        and sorts a 1M-row day on disk (the money check 0.50 s against 0.23 s; six more
        columns cost the refresh 0.07 s). Rows settled after the day's stream are few
        (copies are held, not appended), so one refresh a day serves."""
        self.warehouse.refresh_statistics(self.con, self.table.name, (
            "cdr_date", self.kind.id_column, "source_file", "source_line",
            *self.kind.grouped_columns))
        self._statistics_fresh = True

    def finish(self) -> None:
        if not self._statistics_fresh:
            self._refresh_statistics()
        if self.warehouse.records_id_hashes:
            self.warehouse.record_id_hashes(self.con, self.table.name, self.day,
                                            self._seen.hashes(), self.load_id)
        self._reject_copies_of_other_days()
        self._restore_held_copies(", ".join(self.table.column_names))
        # one read of the day for all its files: a voice day is typically four, and PostgreSQL
        # finds no file's rows without reading the whole day (0.1-0.4 s a read on 1M rows)
        loaded = self._counts_by_file(self.table.name, "cdr_date = ?", (self.day,))
        rejected = self._counts_by_file(REJECTS.name, "kind = ? AND cdr_date = ?",
                                        (self.kind.name, self.day))
        self.files = [self._write_ledger(f, loaded.get(f.source_file, 0),
                                         rejected.get(f.source_file, 0)) for f in self.files]

    def _counts_by_file(self, table: str, where: str, params: Sequence[Any]) -> dict[str, int]:
        """Rows of `table` per source file, as the warehouse counts them."""
        return {file: int(n) for file, n in self._run(
            f"SELECT source_file, COUNT(*) FROM {table} WHERE {where} GROUP BY source_file",
            params)}

    def _reject_copies_of_other_days(self) -> None:
        """The day's rows whose id another day holds are later copies of that day's first
        (by day, file, line): rejected, held, their money taken off, out of the table. Rare
        (a late re-delivery), so the delete from the day's own rows is paid rarely."""
        table, key = self.table.name, self.kind.id_column
        days = self.warehouse.days_sharing_ids(self.con, table, key, self.day)
        if days == []:
            return
        on_days, params = among_days("o.cdr_date", days)
        elsewhere, other = other_days("o.cdr_date", self.day)
        # kept in the warehouse and settled a page at a time: a file re-delivered on another
        # day is a copy in full (1M rows fetched at once ran out of DuckDB's memory, and so did
        # DuckDB's semi-join of the other days' rows with the day's ids before this join)
        self._run("CREATE TEMP TABLE IF NOT EXISTS cdr_copy_of (source_file VARCHAR, "
                  "source_line BIGINT, id VARCHAR, first_file VARCHAR, first_line BIGINT, "
                  "first_day DATE, page BIGINT)")
        self._run("DELETE FROM cdr_copy_of")
        self._run(f"""INSERT INTO cdr_copy_of SELECT source_file, source_line, id, first_file,
              first_line, first_day, FLOOR((ROW_NUMBER() OVER (
                ORDER BY source_file, source_line) - 1) / {SETTLE_ROWS}) FROM (
              SELECT n.source_file, n.source_line, n.{key} AS id, o.source_file AS first_file,
                o.source_line AS first_line, o.cdr_date AS first_day, ROW_NUMBER() OVER (
                  PARTITION BY n.source_file, n.source_line
                  ORDER BY o.cdr_date, o.source_file, o.source_line) AS copy_number
              FROM {table} n JOIN {table} o ON o.{key} = n.{key}
              WHERE n.cdr_date = ? AND {elsewhere}{on_days}) copies
            WHERE copy_number = 1""", (self.day, *other, *params))
        for page in itertools.count():
            found = self.warehouse.fetch_arrow(
                self.con, "SELECT source_file, source_line, id, first_file, first_line, "
                "first_day FROM cdr_copy_of WHERE page = ?", (page,))
            if not found.num_rows:
                break
            self._settle_copies_of_other_days(list(zip(*(
                column.to_pylist() for column in found.columns), strict=True)))

    def _settle_copies_of_other_days(self, found: list[tuple]) -> None:
        """Copies (file, line, id; its first copy's file, line and day): rejected, held,
        their money taken off, out of the table."""
        table, key = self.table.name, self.kind.id_column
        reasons = [self._duplicate_reason(value, file, int(line), as_date(day), copy)
                   for copy, _, value, file, line, day in found]
        lines_of_copies: dict[str, tuple[list[int], list[str]]] = {}
        for (copy, line, *_), reason in zip(found, reasons, strict=True):
            lines, copy_reasons = lines_of_copies.setdefault(copy, ([], []))
            lines.append(int(line))
            copy_reasons.append(reason)
        for copy, (lines, copy_reasons) in lines_of_copies.items():
            self.add_rejects(copy, (self._duplicate_rejects(copy, lines, copy_reasons),))
        self._scratch("cdr_copies", "id VARCHAR, source_file VARCHAR, source_line BIGINT, "
                      "reason VARCHAR", pa.table({
                          "id": pa.array([value for _, _, value, *_ in found], pa.string()),
                          "source_file": pa.array([f for f, *_ in found], pa.string()),
                          "source_line": pa.array([int(n) for _, n, *_ in found], pa.int64()),
                          "reason": pa.array(reasons, pa.string())}))
        # by id too: PostgreSQL then finds the few copies through its id index instead of
        # reading the whole day three times (4 s for one late copy in a 1M-row day)
        copy_of = (f"c.id = t.{key} AND c.source_file = t.source_file "
                   "AND c.source_line = t.source_line")
        match = f"FROM {table} t JOIN cdr_copies c ON {copy_of} WHERE t.cdr_date = ?"
        if self.kind.has_amounts:
            for source_file, currency, app_key, amount in self._run(
                    f"SELECT t.source_file, t.currency, t.application_key, SUM(t.amount) "
                    f"{match} AND t.amount IS NOT NULL GROUP BY 1, 2, 3", (self.day,)):
                money = self._duplicates.setdefault(source_file, {})
                money[(currency, app_key)] = (money.get((currency, app_key), Decimal(0))
                                              + Decimal(amount))
        self._run(f"INSERT INTO {self.held.name} SELECT "
                  f"{', '.join('t.' + c for c in self.table.column_names)}, c.reason {match}",
                  (self.day,))
        self._run(f"DELETE FROM {table} t WHERE t.cdr_date = ? AND EXISTS (SELECT 1 FROM "
                  f"cdr_copies c WHERE {copy_of})", (self.day,))

    def _restore_held_copies(self, columns: str) -> None:
        """A held copy on another day whose id is in the table no more (its original's day
        was re-delivered without it) is loaded again: a call is in the warehouse once,
        whatever the order of deliveries. The other day's ledger is updated to match."""
        table, held, key = self.table.name, self.held.name, self.kind.id_column
        elsewhere, other = other_days("cdr_date", self.day)
        if not self._run(f"SELECT 1 FROM {held} WHERE {elsewhere} LIMIT 1", other):
            return  # nothing held on other days: the common case costs one look
        restored = self._run(f"""SELECT cdr_date, source_file, source_line, {key} FROM (
              SELECT cdr_date, source_file, source_line, {key}, ROW_NUMBER() OVER (
                PARTITION BY {key} ORDER BY cdr_date, source_file, source_line) AS copy_number
              FROM {held} h WHERE {elsewhere}
                AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{key} = h.{key})) first_copies
            WHERE copy_number = 1""", other)
        if not restored:
            return
        # in one statement each: a file re-delivered without its lines restores them all
        self._scratch("cdr_restored", "cdr_date DATE, source_file VARCHAR, source_line BIGINT",
                      pa.table({"cdr_date": pa.array([as_date(r[0]) for r in restored],
                                                     pa.date32()),
                                "source_file": pa.array([r[1] for r in restored], pa.string()),
                                "source_line": pa.array([r[2] for r in restored], pa.int64())}))
        is_restored = ("EXISTS (SELECT 1 FROM cdr_restored r WHERE r.cdr_date = c.cdr_date "
                       "AND r.source_file = c.source_file AND r.source_line = c.source_line)")
        money = self._run(f"SELECT cdr_date, source_file, currency, application_key, "
                          f"SUM(amount) FROM {held} c WHERE {is_restored} AND amount IS NOT "
                          "NULL GROUP BY 1, 2, 3, 4") if self.kind.has_amounts else []
        self._run(f"INSERT INTO {table} SELECT {columns} FROM {held} c WHERE {is_restored}")
        self._run(f"DELETE FROM {held} c WHERE {is_restored}")
        self._run(f"DELETE FROM cdr_rejects c WHERE c.kind = ? AND {is_restored}",
                  (self.kind.name,))
        counts = Counter((as_date(day), file) for day, file, *_ in restored)
        for (cdr_date, source_file), count in counts.items():
            self._count_restored(cdr_date, source_file, count, [
                (currency, app_key, amount) for day, file, currency, app_key, amount in money
                if (as_date(day), file) == (cdr_date, source_file)])
        restored_ids: dict[dt.date, list[str]] = {}
        for cdr_date, _, _, value in restored:
            restored_ids.setdefault(as_date(cdr_date), []).append(value)
        self._record_restored_ids(restored_ids)

    def _record_restored_ids(self, restored: dict[dt.date, list[str]]) -> None:
        """The days' records of id hashes, where the warehouse keeps them, gain the ids
        restored to them."""
        if not self.warehouse.records_id_hashes:
            return
        for day, ids in restored.items():
            hashes = SeenIds.sorted_storable(id_hashes(pa.array(ids, pa.string())))
            self.warehouse.record_id_hashes(self.con, self.table.name, day, hashes,
                                            self.load_id, replacing=False)

    def _count_restored(self, cdr_date: dt.date, source_file: str, count: int,
                        money: list[tuple]) -> None:
        """A file's restored copies: as many more rows loaded, fewer rejected, their money
        back."""
        ((text,),) = self._run("SELECT amount_totals FROM cdr_files WHERE kind = ? AND "
                               "cdr_date = ? AND source_file = ?",
                               (self.kind.name, cdr_date, source_file)) or ((None,),)
        totals = decode_amounts(text)
        for currency, app_key, amount in money:
            totals[(currency, app_key)] = (totals.get((currency, app_key), Decimal(0))
                                           + Decimal(str(amount)))
        self._run("UPDATE cdr_files SET rows_loaded = rows_loaded + ?, "
                  "rows_rejected = rows_rejected - ?, amount_totals = ? WHERE kind = ? "
                  "AND cdr_date = ? AND source_file = ?",
                  (count, count, encode_amounts(totals), self.kind.name, cdr_date,
                   source_file))

    def _write_ledger(self, file: FileLoad, loaded: int, rejected: int) -> FileLoad:
        totals = dict(self._amounts[file.source_file].result())
        for key, amount in self._duplicates.get(file.source_file, {}).items():
            totals[key] = totals.get(key, Decimal(0)) - amount
        file = dataclasses.replace(file, rows_loaded=loaded, rows_rejected=rejected,
                                   amount_totals=totals)
        if not file.balances:
            raise RuntimeError(
                f"{file.source_file}: read {file.rows_read} lines but loaded {loaded} and "
                f"rejected {rejected}; rolling back rather than losing lines")
        self.warehouse.append(self.con, FILES.name, FILES.rows([{
            **{k: v for k, v in vars(file).items() if k in FILES.column_names},
            "amount_totals": encode_amounts(file.amount_totals),
            "schema_drift": encode_drift(file.schema_drift),
            "load_id": self.load_id, "loaded_at": dt.datetime.now(dt.UTC)}]))
        return file


REJECT_ROWS = pa.schema([("source_line", pa.int64()), ("raw_line", pa.string()),
                         ("reasons", pa.string())])


def reject_rows(rejects: list[Reject]) -> pa.Table:
    """Rejects as the columns of `cdr_rejects` they fill (their reasons `; `-separated)."""
    return reject_table([r.line for r in rejects], [r.raw_line for r in rejects],
                        ["; ".join(r.reasons) for r in rejects])


def reject_table(lines: Sequence[int], raw_lines: Sequence[str | None],
                 reasons: Sequence[str]) -> pa.Table:
    return pa.Table.from_arrays([pa.array(lines, pa.int64()), pa.array(raw_lines, pa.string()),
                                 pa.array(reasons, pa.string())], schema=REJECT_ROWS)


def _by_file(rows: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """The rows in runs of one source file, in their order."""
    if not rows.num_rows:
        return
    files = rows.column("source_file").combine_chunks().dictionary_encode()
    codes = files.indices.to_numpy()
    bounds = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist(), len(codes)]
    for start, end in itertools.pairwise(bounds):
        yield files.dictionary[int(codes[start])].as_py(), rows.slice(start, end - start)


def encode_amounts(totals: dict[AmountKey, Decimal]) -> str:
    return json.dumps([[c, k, str(v)] for (c, k), v in sorted(
        totals.items(), key=lambda item: (str(item[0][0]), str(item[0][1])))])


def decode_amounts(text: str | None) -> dict[AmountKey, Decimal]:
    return {(c, k): Decimal(v) for c, k, v in json.loads(text or "[]")}


def encode_drift(drift: SchemaDrift) -> str | None:
    return json.dumps({"missing": list(drift.missing), "unknown": list(drift.unknown),
                       "renames": drift.renames}) if drift else None


def decode_drift(text: str | None) -> SchemaDrift:
    data = json.loads(text) if text else {}
    return SchemaDrift(tuple(data.get("missing", ())), tuple(data.get("unknown", ())),
                       data.get("renames", {}))

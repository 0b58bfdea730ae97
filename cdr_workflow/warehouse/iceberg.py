"""Apache Iceberg tables through pyiceberg: the product's SQL runs in an in-memory DuckDB working
copy, and each transaction commits what it changed, table by table, partition by partition.

- A CDR table (billions of rows) is a view: the rows this transaction wrote, over the Iceberg
  data files of the days it did not replace, read through Arrow. Each file's day comes from the
  manifests, so a query on one day opens that day's files only; the search for an id on other
  days reads the id column of every file (what the invariant costs on any engine).
- Every other table (ledger, rejects, held copies, reports: a few rows a day) is copied whole
  on first use in a session, and copied again when its Iceberg snapshot moved.

At commit each changed table is one Iceberg commit: the days a CDR table replaced are
overwritten (`overwrite_filter` on the partition column) and rows for other days appended; a
small table's changed partitions are rewritten from its rows now there, with this transaction's
changes (rows removed, rows added) merged in, so two runs writing other rows of one partition
(two kinds, one day) both land. Commits go CDR tables first and the ledger `cdr_files` last: a
reader who sees a day's ledger sees its rows. A run that dies between two tables' commits leaves
the day's rows newer than its ledger; re-running the day replaces every table's day again.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import In
from pyiceberg.io.pyarrow import pyarrow_to_schema
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table as IcebergTable
from pyiceberg.transforms import IdentityTransform
from pyiceberg.utils.config import Config

from cdr_workflow.duckdb_connect import connect
from cdr_workflow.warehouse.base import Warehouse
from cdr_workflow.warehouse.tables import ALL_TABLES, CDR_TABLES, FILES, Table

CDR_TABLE_NAMES = {t.name for t in CDR_TABLES.values()}  # viewed; the others copied whole

DEFAULT_NAMESPACE = "cdr"
COMMIT_ATTEMPTS = 5  # a small table's partition rewritten by another run meanwhile: merge again
MEMORY_LIMIT = "1GB"  # the working copy spills to a temporary directory beyond this
COMMIT_BATCH_ROWS = 1_000_000  # a CDR table's rows go to Iceberg this many at a time
TABLES: dict[str, Table] = {t.name: t for t in ALL_TABLES}
# ledger last: its rows say the day is complete
COMMIT_ORDER = [t for t in ALL_TABLES if t is not FILES] + [FILES]
WRITE = re.compile(r"\s*(?:DELETE\s+FROM|INSERT\s+INTO|UPDATE)\s+(\w+)", re.IGNORECASE)
WHOLE_PARTITION_DELETE = re.compile(r"\s*DELETE FROM (\w+) WHERE (\w+) = \?\s*")
ROW_DELETE = re.compile(r"\s*DELETE FROM (\w+)((?: \w+)?) WHERE (.*)", re.DOTALL)
TABLE_NAMES = re.compile(r"\b(" + "|".join(sorted(TABLES, key=len, reverse=True)) + r")\b")


def parse_iceberg_url(url: str) -> tuple[str, str]:
    """`iceberg://CATALOG[/NAMESPACE]` → (catalog, namespace)."""
    rest = url.removeprefix("iceberg://")
    catalog, _, namespace = rest.partition("/")
    if not catalog:
        raise ValueError("an Iceberg warehouse URL names its catalog: iceberg://CATALOG/NAMESPACE")
    return catalog, namespace.strip("/") or DEFAULT_NAMESPACE


def catalog_properties(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The standard AWS variables, for catalogs that do not set the S3 endpoint or region
    themselves (pyiceberg's Arrow file IO does not read `AWS_ENDPOINT_URL`)."""
    properties = {}
    if env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL_S3"):
        properties["s3.endpoint"] = env.get("AWS_ENDPOINT_URL_S3") or env["AWS_ENDPOINT_URL"]
    if env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"):
        properties["s3.region"] = env.get("AWS_REGION") or env["AWS_DEFAULT_REGION"]
    return properties


class IcebergWarehouse(Warehouse):
    def __init__(self, url: str):
        self.catalog_name, self.namespace = parse_iceberg_url(url)
        self._catalog: Catalog | None = None

    @property
    def display_url(self) -> str:
        return f"iceberg://{self.catalog_name}/{self.namespace}"

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            # properties from .pyiceberg.yaml / PYICEBERG_CATALOG__… win over these defaults
            self._catalog = load_catalog(self.catalog_name, **{
                **catalog_properties(), **_configured(self.catalog_name)})
        return self._catalog

    def iceberg_table(self, name: str) -> IcebergTable:
        return self.catalog.load_table((self.namespace, name))

    @contextmanager
    def _open(self) -> Iterator[Any]:
        session = WorkingCopy(self)
        try:
            yield session
        finally:
            session.close()

    def _begin(self, con: Any) -> None:
        con.begin()

    def append(self, con: Any, table: str, rows: pa.Table, temporary: bool = False) -> None:
        con.append(table, rows)

    def ensure_tables(self) -> None:
        """Create the namespace and tables, partitioned by their partition column, and add the
        columns a table made by an earlier version lacks."""
        if self._tables_ready:
            return
        self._ensure_namespace()
        for table in ALL_TABLES:
            schema = iceberg_schema(table)
            part = schema.find_field(table.partition_column)
            iceberg = self.catalog.create_table_if_not_exists(
                (self.namespace, table.name), schema=schema,
                partition_spec=PartitionSpec(PartitionField(
                    source_id=part.field_id, field_id=1000, transform=IdentityTransform(),
                    name=part.name)),
                properties={"comment": table.description})
            if set(table.column_names) - {f.name for f in iceberg.schema().fields}:
                with iceberg.update_schema() as update:
                    update.union_by_name(table.arrow_schema)
        self._tables_ready = True

    def _ensure_namespace(self) -> None:
        # the SQL catalog looks, then inserts: of two first loads at once, the later insert
        # fails (a unique-key error, not "already exists") though the namespace is there
        try:
            self.catalog.create_namespace_if_not_exists(self.namespace)
        except Exception:
            if not self.catalog.namespace_exists(self.namespace):
                raise


def iceberg_schema(table: Table) -> Schema:
    """The table's Iceberg schema: its Arrow schema with field ids 1…n in column order."""
    return pyarrow_to_schema(pa.schema([
        field.with_metadata({b"PARQUET:field_id": str(i)})
        for i, field in enumerate(table.arrow_schema, start=1)]))


def _configured(catalog: str) -> dict[str, str]:
    """What the pyiceberg configuration says of the catalog (file or environment, read now:
    pyiceberg's own copy is read once, at import)."""
    return Config().get_catalog_config(catalog) or {}


class WorkingCopy:
    """One session's in-memory DuckDB holding the Iceberg tables it used, and the open
    transaction's changes to them; see the module."""

    def __init__(self, warehouse: IcebergWarehouse):
        self.warehouse = warehouse
        self._spill = tempfile.TemporaryDirectory(prefix="cdr_iceberg_")
        self.db = self._new_db()
        self._snapshots: dict[str, int | None] = {}  # table → the snapshot copied or viewed
        self._used: set[str] = set()  # tables checked against their snapshot this transaction
        self._written: set[str] = set()
        self._replaced: dict[str, set[Any]] = {}  # CDR table → the days it replaced
        self._iceberg: dict[str, IcebergTable] = {}  # CDR table → the snapshot viewed

    def _new_db(self) -> duckdb.DuckDBPyConnection:
        db = connect()
        db.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        db.execute(f"SET temp_directory = '{self._spill.name}'")
        db.execute("SET TimeZone = 'UTC'")
        return db

    def close(self) -> None:
        self.db.close()
        self._spill.cleanup()

    # -- transactions --------------------------------------------------------------------

    def begin(self) -> None:
        self._used, self._written, self._replaced = set(), set(), {}
        self.db.begin()

    def rollback(self) -> None:
        """Forget the working copy: the next transaction copies afresh."""
        self.db.close()
        self.db = self._new_db()
        self._snapshots.clear()

    def commit(self) -> None:
        try:
            with warnings.catch_warnings():
                # pyiceberg warns when an overwrite's filter matches no rows: a first load
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                for table in COMMIT_ORDER:
                    if table.name not in self._written:
                        continue
                    if table.name in CDR_TABLE_NAMES:
                        self._commit_cdr_table(table)
                    else:
                        self._commit_small_table(table)
            self.db.commit()
        except BaseException:
            self.rollback()
            raise
        for name in self._written:  # the copies are older than what was just committed
            self._snapshots.pop(name, None)

    # -- statements ----------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> duckdb.DuckDBPyConnection:
        self._use_tables_of(sql)
        target = WRITE.match(sql)
        if target and target.group(1) in TABLES:
            self._written.add(target.group(1))
            if target.group(1) in CDR_TABLE_NAMES:
                sql = self._cdr_write(target.group(1), sql, params)
        return self.db.execute(sql, params)

    def sql(self, sql: str, params: Sequence[Any] = ()) -> duckdb.DuckDBPyRelation:
        """A query's result as a relation (its Arrow without DB-API's extra copy)."""
        self._use_tables_of(sql)
        return self.db.sql(sql, params=list(params))

    def _use_tables_of(self, sql: str) -> None:
        for name in set(TABLE_NAMES.findall(sql)):
            self._use(name)

    def append(self, name: str, rows: pa.Table) -> None:
        if name in TABLES:
            self._use(name)
            self._written.add(name)
        local = f"{name}__new" if name in CDR_TABLE_NAMES else name
        columns = [c[0] for c in self.db.execute(f"SELECT * FROM {local} LIMIT 0").description]
        self.db.from_arrow(rows.select(columns)).insert_into(local)

    def _cdr_write(self, name: str, sql: str, params: Sequence[Any]) -> str:
        """A CDR table's rows of the days not replaced are Iceberg's: a statement may replace
        a day, add rows, or delete rows of a day already replaced."""
        table = TABLES[name]
        whole = WHOLE_PARTITION_DELETE.fullmatch(sql)
        if whole and whole.group(2) == table.partition_column:
            self._replaced.setdefault(name, set()).add(params[0])
            self._view_history(name)
        elif sql.lstrip().upper().startswith("DELETE"):
            row_delete = ROW_DELETE.fullmatch(sql)
            if row_delete is None or self.db.execute(
                    f"SELECT COUNT(*) FROM {name}__history{row_delete.group(2)} "
                    f"WHERE {row_delete.group(3)}", params).fetchone()[0]:
                raise NotImplementedError(
                    f"on Iceberg, rows of {name} are deleted only from days this "
                    "transaction replaced")
        elif sql.lstrip().upper().startswith("UPDATE"):
            raise NotImplementedError(f"on Iceberg, rows of {name} are not updated in place")
        return WRITE.sub(lambda m: m.group(0).replace(name, f"{name}__new"), sql, count=1)

    # -- the working copy of a table -----------------------------------------------------

    def _use(self, name: str) -> None:
        """Bring a table into the working copy, or check that its copy is current."""
        if name in self._used:
            return
        self._used.add(name)
        iceberg = self.warehouse.iceberg_table(name)
        snapshot = iceberg.metadata.current_snapshot_id
        if name in self._snapshots and self._snapshots[name] == snapshot:
            return
        table = TABLES[name]
        if name in CDR_TABLE_NAMES:
            self.db.execute(f"CREATE OR REPLACE TABLE {name}__new ({_columns_ddl(table)})")
            self._iceberg[name] = iceberg
            self._view_history(name)
            self.db.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {name}__new "
                            f"UNION ALL SELECT * FROM {name}__history")
        else:
            rows = _conform(iceberg.scan().to_arrow(), table)
            for copy in (name, f"{name}__base"):  # __base: as read, to find what changed
                self.db.execute(f"CREATE OR REPLACE TABLE {copy} ({_columns_ddl(table)})")
                self.db.from_arrow(rows).insert_into(copy)
        self._snapshots[name] = snapshot

    def _view_history(self, name: str) -> None:
        """The table's Iceberg rows of the days not replaced, as `NAME__history`."""
        self.db.register(f"{name}__history", history_dataset(
            self._iceberg[name], TABLES[name], self._replaced.get(name, set())))

    def _commit_cdr_table(self, table: Table) -> None:
        """One Iceberg commit: the days replaced overwritten with the rows now there, the
        rest appended, written batch by batch so that a big day is never whole in memory."""
        iceberg = self.warehouse.iceberg_table(table.name)
        batches = self.db.sql(f"SELECT * FROM {table.name}__new").fetch_record_batch(
            COMMIT_BATCH_ROWS)
        replaced = sorted(self._replaced.get(table.name, ()))
        try:
            with iceberg.transaction() as commit:
                first = True
                for batch in batches:
                    rows = _conform(pa.Table.from_batches([batch]), table)
                    if first and replaced:
                        commit.overwrite(rows, overwrite_filter=In(table.partition_column,
                                                                   replaced))
                    else:
                        commit.append(rows)
                    first = False
                if first and replaced:  # the days replaced hold no rows now
                    commit.delete(In(table.partition_column, replaced))
        except ValidationException as exc:
            raise RuntimeError(
                f"another run wrote {table.name} for {', '.join(map(str, replaced))} at the same "
                "time; nothing of this run's was kept in it; run the day again") from exc
        self.db.execute(f"DELETE FROM {table.name}__new")

    def _commit_small_table(self, table: Table) -> None:
        """Rewrite the partitions that changed: the rows Iceberg holds now, less the rows this
        transaction removed, plus the rows it added."""
        name, part = table.name, table.partition_column
        added, removed = (_conform(self.db.sql(
            f"SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}").to_arrow_table(), table)
            for a, b in ((name, f"{name}__base"), (f"{name}__base", name)))
        changed = sorted(set(added.column(part).to_pylist())
                         | set(removed.column(part).to_pylist()))
        if not changed:
            return
        for attempt in range(COMMIT_ATTEMPTS):
            iceberg = self.warehouse.iceberg_table(name)
            current = _conform(iceberg.scan(row_filter=In(part, changed)).to_arrow(), table)
            merged = connect()
            merged.register("current_rows", current)
            merged.register("removed_rows", removed)
            merged.register("added_rows", added)
            rows = merged.sql("(SELECT * FROM current_rows EXCEPT ALL SELECT * FROM "
                              "removed_rows) UNION ALL SELECT * FROM added_rows").to_arrow_table()
            merged.close()
            try:
                iceberg.overwrite(_conform(rows, table),
                                  overwrite_filter=In(part, changed))
                return
            except (ValidationException, CommitFailedException):
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise


def history_dataset(iceberg: IcebergTable, table: Table, leave_out: set[Any]) -> Any:
    """An Arrow dataset of the table's data files, each tagged with its day from the manifest
    (so DuckDB's day filters skip files unopened), leaving out the days in `leave_out`.
    Tables another engine wrote with delete files are read through pyiceberg instead."""
    part = table.partition_column
    tasks = list(iceberg.scan().plan_files()) if iceberg.metadata.current_snapshot_id else []
    if any(task.delete_files for task in tasks):
        rows = _conform(iceberg.scan().to_arrow(), table)
        return rows.filter(~pa.compute.is_in(rows.column(part), pa.array(
            sorted(leave_out), pa.date32()))) if leave_out else rows
    spec = [f.source_id for f in iceberg.spec().fields]
    if spec != [iceberg.schema().find_field(part).field_id]:
        raise ValueError(f"{table.name} is expected to be partitioned by {part} alone")
    kept = [(task.file.file_path, _as_day(task.file.partition[0])) for task in tasks
            if _as_day(task.file.partition[0]) not in leave_out]
    if not kept:
        return pa.Table.from_batches([], schema=table.arrow_schema)
    scheme, _, rest = kept[0][0].partition("://")
    filesystem = iceberg.io.fs_by_scheme(scheme, rest.split("/", 1)[0])
    return ds.FileSystemDataset.from_paths(
        [path.partition("://")[2] for path, _ in kept], schema=table.arrow_schema,
        format=ds.ParquetFileFormat(), filesystem=filesystem,
        partitions=[ds.field(part) == pa.scalar(day, pa.date32()) for _, day in kept])


def _as_day(value: Any) -> Any:
    """A date partition value as the manifests hold it (days since 1970-01-01) → a date."""
    return dt.date(1970, 1, 1) + dt.timedelta(days=value) if isinstance(value, int) else value


def _columns_ddl(table: Table) -> str:
    return ", ".join(c.definition for c in table.columns)


def _conform(rows: pa.Table, table: Table) -> pa.Table:
    """Rows in the table's column order and types; columns an older file lacks are null."""
    return pa.Table.from_arrays(
        [rows.column(c.name).cast(c.type) if c.name in rows.column_names
         else pa.nulls(rows.num_rows, c.type) for c in table.columns],
        schema=table.arrow_schema)


__all__ = ["IcebergWarehouse", "parse_iceberg_url"]

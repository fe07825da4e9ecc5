"""Databases a batch job reads from and writes to, as Arrow.

PostgreSQL goes through ADBC (Arrow's own database driver: rows travel in PostgreSQL's
binary COPY format straight into and out of Arrow buffers, several times faster than
building Python tuples); any other SQLAlchemy URL goes through SQLAlchemy and pandas.

Example::

    db = Database("postgresql+psycopg://user@host/db")
    for batch in db.read("SELECT * FROM customers", 100_000): ...
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from mlprod.data import safe_url
from mlprod.errors import DataError

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


@dataclass(frozen=True)
class SqlQuery:
    """A batch job's input: the rows `query` returns from the database at `url`.

    Resuming a killed job skips the rows already scored, so the query must return its
    rows in the same order each time: give it an ``ORDER BY``.
    """

    url: str
    query: str


@dataclass(frozen=True)
class SqlTable:
    """A batch job's output: table `name` (``schema.table`` allowed) in the database at `url`.

    Created when absent, appended to otherwise; a job's rows appear all at once.
    """

    url: str
    name: str

    def __post_init__(self) -> None:
        if not TABLE_NAME.match(self.name):
            raise DataError(
                f"--output-table {self.name!r} is not a table name: use letters, digits and "
                "underscores (optionally schema.table)"
            )


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` without field metadata and with extension types (PostgreSQL numeric) as storage."""
    fields = []
    for f in schema:
        kind = f.type.storage_type if isinstance(f.type, pa.ExtensionType) else f.type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        fields.append(pa.field(f.name, kind, nullable=True))
    return pa.schema(fields)


def plain_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with `plain_schema` types."""
    columns = []
    for column, f in zip(batch.columns, schema, strict=True):
        if isinstance(column, pa.ExtensionArray):
            column = column.storage
        columns.append(column.cast(f.type) if column.type != f.type else column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class Database:
    """One database URL: streamed reads, Arrow appends, table checks and DDL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = safe_url(url)
        try:
            self.sa_url = sa.make_url(url)
            self.engine: Engine = sa.create_engine(url, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise DataError(
                f"cannot use database URL {self.shown!r}: {exc}. Use a SQLAlchemy URL such as "
                "sqlite:///shop.db or postgresql+psycopg://user@host/db"
            ) from None
        self.postgres = self.sa_url.get_backend_name() == "postgresql"

    # --- reading

    def query_schema(self, query: str) -> pa.Schema:
        """The columns `query` returns, before any row is read."""
        if self.postgres:
            with self._adbc() as conn, conn.cursor() as cur:
                try:
                    return plain_schema(cur.adbc_execute_schema(query))
                except Exception as exc:  # the driver's errors share no base class but Exception
                    raise self._error("the query failed", exc) from None
        try:  # types from the first rows, as pandas infers them for every chunk
            with self.engine.connect() as conn:
                head = pd.read_sql(sa.text(f"SELECT * FROM ({query}) AS q LIMIT 1000"), conn)
        except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise self._error("the query failed", exc) from None
        return pa.Schema.from_pandas(head, preserve_index=False)

    def read(self, query: str, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        """The query's rows as record batches, streamed (the server keeps the cursor)."""
        if not self.postgres:
            yield from self._pandas_read(query, chunk_rows)
            return
        with self._adbc() as conn, conn.cursor() as cur:
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(16 << 20)}
            )
            try:
                cur.execute(query)
                reader = cur.fetch_record_batch()
            except Exception as exc:
                raise self._error("the query failed", exc) from None
            schema = plain_schema(reader.schema)
            for batch in reader:
                yield plain_batch(batch, schema)

    def _pandas_read(self, query: str, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        try:
            with self.engine.connect() as conn:
                streamed = conn.execution_options(stream_results=True)
                for frame in pd.read_sql(sa.text(query), streamed, chunksize=chunk_rows):
                    yield pa.RecordBatch.from_pandas(frame, preserve_index=False)
        except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
            raise self._error("the query failed", exc) from None

    # --- tables

    def columns(self, name: str) -> dict[str, Any] | None:
        """Column name -> reflected column of table `name`, None when it does not exist."""
        schema, _, table = name.rpartition(".")
        try:
            inspector = sa.inspect(self.engine)
            if not inspector.has_table(table, schema=schema or None):
                return None
            found = inspector.get_columns(table, schema=schema or None)
        except SQLAlchemyError as exc:
            raise self._error(f"cannot inspect table {name}", exc) from None
        return {str(c["name"]): c for c in found}

    def table(self, name: str, schema: pa.Schema, metadata: sa.MetaData) -> sa.Table:
        """A SQLAlchemy table `name` with one column per Arrow field."""
        owner, _, table = name.rpartition(".")
        return sa.Table(
            table,
            metadata,
            *(sa.Column(f.name, sql_type(f), nullable=True) for f in schema),
            schema=owner or None,
        )

    def write(self, work: Any, what: str) -> Any:
        """Run `work(connection)` in one transaction; a database error names `what`."""
        try:
            with self.engine.begin() as conn:
                return work(conn)
        except SQLAlchemyError as exc:
            raise self._error(what, exc) from None

    def append(self, table: sa.Table, rows: pa.Table) -> None:
        """Append `rows` to `table` in one transaction (COPY on PostgreSQL)."""
        if self.postgres:
            name = f"{table.schema}.{table.name}" if table.schema else table.name
            with self._adbc() as conn:
                with conn.cursor() as cur:
                    try:
                        cur.adbc_ingest(
                            table.name, rows, mode="append", db_schema_name=table.schema
                        )
                    except Exception as exc:
                        raise self._error(f"writing to {name} failed", exc) from None
                conn.commit()
            return
        records = rows.to_pylist()
        self.write(lambda conn: conn.execute(sa.insert(table), records), f"writing {table.name}")

    def count(self, conn: Connection, table: sa.Table) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _adbc(self) -> Iterator[Any]:
        import adbc_driver_postgresql.dbapi as adbc

        uri = self.sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            conn = adbc.connect(uri)
        except Exception as exc:
            raise self._error("cannot connect", exc) from None
        try:
            yield conn
        finally:
            conn.close()

    def _error(self, what: str, exc: BaseException) -> DataError:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(exc).__name__
        return DataError(f"{what} on {self.shown!r}: {first.replace(self.url, self.shown)}")


_SQL_TYPES: list[tuple[Any, Any]] = [
    (pa.types.is_boolean, sa.Boolean),
    (pa.types.is_integer, sa.BigInteger),
    (pa.types.is_floating, lambda: sa.Float(53)),
    (pa.types.is_string, sa.Text),
    (pa.types.is_large_string, sa.Text),
    (pa.types.is_date, sa.Date),
    (pa.types.is_decimal, sa.Numeric),
]


def sql_type(f: pa.Field) -> Any:
    """The SQL column type that holds Arrow field `f`."""
    if pa.types.is_timestamp(f.type):
        return sa.DateTime(timezone=f.type.tz is not None)
    for test, make in _SQL_TYPES:
        if test(f.type):
            return make()
    raise DataError(f"column {f.name!r} holds {f.type}, which mlprod cannot write to SQL")


def type_family(kind: Any) -> str:
    """A coarse family of a SQL or Arrow type, for comparing an output to a table."""
    if isinstance(kind, pa.DataType):
        for test, name in (
            (pa.types.is_boolean, "boolean"),
            (pa.types.is_integer, "integer"),
            (pa.types.is_floating, "number"),
            (pa.types.is_decimal, "number"),
            (pa.types.is_timestamp, "timestamp"),
            (pa.types.is_date, "date"),
        ):
            if test(kind):
                return name
        return "text"
    for types, name in (
        ((sa.Boolean,), "boolean"),
        ((sa.Integer,), "integer"),
        ((sa.Float, sa.Numeric), "number"),
        ((sa.DateTime,), "timestamp"),
        ((sa.Date,), "date"),
        ((sa.String, sa.Text), "text"),
    ):
        if isinstance(kind, types):
            return name
    return type(kind).__name__.lower()


FITS = {
    ("integer", "integer"),
    ("integer", "number"),
    ("number", "number"),
    ("boolean", "boolean"),
    ("text", "text"),
    ("timestamp", "timestamp"),
    ("date", "date"),
    ("date", "timestamp"),
}

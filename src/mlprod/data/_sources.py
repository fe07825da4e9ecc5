"""Reading the rows a spec points at: CSV, Parquet or a SQL query.

Every failure a user can cause (a wrong path, a typo in a query, a wrong password)
becomes a `DataError` that names the file or the database, never a raw traceback and
never the password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from pandas.tseries.api import guess_datetime_format
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from mlprod.errors import DataError
from mlprod.spec import EventQuery, SqlSource, SqlTable

Source = str | Path | SqlSource | SqlTable | EventQuery

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
_SHOWN_COLUMNS = 30
_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def as_sql(source: SqlSource | SqlTable | EventQuery) -> SqlSource:
    """Any SQL source as a query: a table becomes ``SELECT * FROM "schema"."table"``."""
    if isinstance(source, SqlSource):
        return source
    if isinstance(source, SqlTable):
        quoted = ".".join('"' + part.replace('"', '""') + '"' for part in source.table.split("."))
        return SqlSource(url=source.url, query=f"SELECT * FROM {quoted}")
    return SqlSource(url=source.url, query=source.query)


def load_frame(source: Source, *, allow_empty: bool = False) -> pd.DataFrame:
    """All rows of `source` as a DataFrame; a `DataError` for anything a user got wrong.

    Paths are taken as given: the spec loader resolves them against the spec's folder.
    An empty result is an error unless `allow_empty` (an event table may have no news).

    Example::

        df = load_frame("customers.csv")
        df = load_frame(SqlSource(url="sqlite:///shop.db", query="SELECT * FROM customers"))
    """
    if isinstance(source, SqlTable | EventQuery):
        source = as_sql(source)
    if isinstance(source, SqlSource):
        frame = _read_sql(source)
        where = f"the query on {safe_url(source.url)}"
    else:
        path = Path(source)
        frame = _read_file(path)
        where = f"file {str(path)!r}"
    if len(frame) == 0 and not allow_empty:
        raise DataError(
            f"the data source returned no rows: {where} has 0 rows "
            f"(columns: {_preview(frame.columns)}). Point data.source at a table with data."
        )
    return frame


def require_columns(df: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    """Fail with one message listing every missing column, so one fix covers them all.

    Example::

        require_columns(df, ["churned"], where="data.target in mlprod.yaml")
    """
    present = {str(column) for column in df.columns}
    missing = [column for column in columns if column not in present]
    if missing:
        raise DataError(
            f"column(s) {missing} named in {where} are not in the data; "
            f"available columns: {_preview(df.columns)}. "
            f"Fix the name in {where} or add the column to the source."
        )


def safe_url(url: str) -> str:
    """`url` with its password replaced by ``***``, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def _preview(columns: Iterable[object]) -> str:
    names = [str(column) for column in columns]
    shown = ", ".join(repr(name) for name in names[:_SHOWN_COLUMNS])
    more = len(names) - _SHOWN_COLUMNS
    return f"[{shown}{f', ... and {more} more' if more > 0 else ''}]"


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((suffix for suffix in SUPPORTED_SUFFIXES if name.endswith(suffix)), None)


def _read_file(path: Path) -> pd.DataFrame:
    suffix = _suffix(path)
    if not path.exists():
        raise DataError(
            f"data source not found: {str(path)!r} (resolved to {str(path.absolute())!r}). "
            "Paths in mlprod.yaml are relative to the folder that holds mlprod.yaml; "
            "check data.source."
        )
    if suffix is None:
        kind = "".join(path.suffixes) or "(none)"
        raise DataError(
            f"cannot read {str(path)!r}: unsupported file type {kind!r}. "
            f"Supported: {', '.join(SUPPORTED_SUFFIXES)}, or a SQL source {{url, query}}."
        )
    try:
        if suffix in CSV_SUFFIXES:
            return pd.read_csv(path)
        return pd.read_parquet(path, engine="pyarrow")
    except (ValueError, OSError, EOFError, NotImplementedError) as exc:
        # pandas' parser errors and pyarrow's ArrowInvalid are ValueErrors; a cut-off
        # gzip stream is EOFError; pyarrow's unsupported-type error is NotImplementedError.
        raise DataError(
            f"cannot read {str(path)!r} as {suffix.lstrip('.')}: {_first_line_of(str(exc))}. "
            "Check that the file is complete and in that format."
        ) from exc


def _read_sql(source: SqlSource) -> pd.DataFrame:
    shown = safe_url(source.url)
    try:
        engine = create_engine(source.url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise DataError(
            f"cannot use database URL {shown!r}: {_scrub(str(exc), source.url)}. "
            "Use a SQLAlchemy URL such as sqlite:///shop.db or "
            "postgresql+psycopg://user@host/db."
        ) from exc
    try:
        with engine.connect() as connection:
            return pd.read_sql(text(source.query), connection)
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
        raise DataError(
            f"the SQL source failed on {shown!r}: {_scrub(_db_message(exc), source.url)}. "
            "Check data.source.url and data.source.query in mlprod.yaml."
        ) from exc
    finally:
        engine.dispose()


def _db_message(exc: Exception) -> str:
    """The database's own first line, without SQLAlchemy's and pandas' wrapping."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, DBAPIError):
        cause = cause.__cause__
    message = str(cause.orig) if isinstance(cause, DBAPIError) else str(exc)
    return _first_line_of(message)


def _scrub(message: str, url: str) -> str:
    """Remove the URL's password from a driver message, should the driver echo it."""
    try:
        password = make_url(url).password
    except ArgumentError:
        match = _PASSWORD_IN_URL.search(url)
        password = match.group(0)[len(match.group(1)) : -1] if match else None
    if password:
        message = message.replace(str(password), "***")
    return _PASSWORD_IN_URL.sub(r"\1***@", message)


def parse_times(values: pd.Series, column: str | None = None) -> pd.Series:
    """`values` as datetimes; a `DataError` naming the column when they are not dates.

    Missing values stay NaT: whether those are allowed is the caller's decision.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    name = column if column is not None else str(values.name)
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise DataError(
            f"time column {name!r} holds numbers ({values.dtype}), not dates. "
            "Store event times as dates such as 2024-05-01 or 2024-05-01T13:00:00."
        )
    error: Exception | None = None
    for fmt in ("ISO8601", _guess_format(values), "mixed"):
        if fmt is None:
            continue
        try:
            return pd.to_datetime(values, format=fmt)
        except (ValueError, TypeError, OverflowError) as exc:
            error = exc
    raise DataError(
        f"time column {name!r} has values that are not dates: {_first_line_of(str(error))}. "
        "Fix those rows or point data.time at the event-time column."
    ) from error


def _guess_format(values: pd.Series) -> str | None:
    """The strptime format of the first value, so pandas need not guess (and warn)."""
    present = values.dropna()
    return guess_datetime_format(str(present.iloc[0])) if len(present) else None


def _first_line_of(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0].rstrip(". ") if lines else "(no message)"

"""Engines per backend and the store's JSON rule.

SQLite gets WAL, a busy timeout and foreign keys; PostgreSQL a connect timeout and
pre-ping. Both serialise JSON the same way (`json_dumps`), so they hand back the same values.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from mlprod.errors import StoreError

HINT = "Check --store or MLPROD_STORE (a folder, or a URL such as postgresql+psycopg://host/db)."


def json_dumps(value: Any) -> str:
    """JSON for the store: NaN and infinities become null, as pydantic's JSON mode does.

    PostgreSQL refuses NaN in JSON and SQLite would store invalid JSON, so one rule for both
    keeps the backends identical (a metric that is undefined reads back as None). orjson
    does that natively and fast (the prediction log serializes every record); the standard
    library takes over for what orjson refuses, such as integers beyond 64 bits.
    """
    try:
        return orjson.dumps(value, default=_plain, option=_ORJSON).decode()
    except orjson.JSONEncodeError:
        return json.dumps(_finite(value), allow_nan=False, default=_plain, separators=(",", ":"))


_ORJSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def plain_json(value: Any) -> Any:
    """`value` as the store will hand it back: plain JSON types, non-finite floats as None.

    Raises TypeError before any transaction starts when something cannot be stored.
    """
    return json.loads(json_dumps(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, dates and paths: the values training code hands us."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return _finite(convert())
    raise TypeError(f"cannot store {type(value).__name__} as JSON: convert it to plain data")


# --- engines: one per Store, tuned per backend


def create_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a 30 s busy timeout and foreign keys."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise StoreError(f"{hide_password(str(url))!r} is not a database URL. {HINT}") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = 10
        return sa.create_engine(
            parsed, pool_pre_ping=True, json_serializer=json_dumps, connect_args=connect_args
        )
    except (sa_exc.ArgumentError, ImportError, OSError) as exc:
        detail = scrub(str(exc), parsed.password)
        raise StoreError(f"cannot open the store {hide_password(url)}: {detail}. {HINT}") from None


def _sqlite_engine(url: sa.URL) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not memory and not url.query.get("uri"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"json_serializer": json_dumps}
    if memory:
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        options["connect_args"] = {"timeout": 30}
    engine = sa.create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


PRAGMAS = (
    "busy_timeout = 30000",
    "journal_mode = WAL",
    "foreign_keys = ON",
    "synchronous = NORMAL",
    # The prediction log inserts under random keys: index pages must stay in memory (up to
    # 64 MB) and the WAL may reach ~40 MB before a checkpoint copies it back. Together
    # they take a busy log from 37k to 52k rows/s.
    "cache_size = -65536",
    "wal_autocheckpoint = 10000",
)


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    """Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take the lock up front, so they queue instead of deadlocking on upgrade."""
    immediate = conn.get_execution_options().get("mlprod_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def hide_password(url: str) -> str:
    """`url` with its password replaced by ``***``, safe for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def scrub(text: str, password: str | None) -> str:
    """`text` without `password`: driver messages may echo connection parameters."""
    return text.replace(password, "***") if password else text

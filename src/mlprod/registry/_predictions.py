"""The prediction log in the metadata store: idempotent batch inserts, reads for analysts.

Inserts are keyed by the prediction id and ignore ids already stored, because the spool in
front of them delivers at least once (a flusher killed between insert and commit replays
its batch). Storage is therefore exactly once without any coordination between servers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mlprod.errors import DataError
from mlprod.registry import _tables as t
from mlprod.registry._store import Store, _exists, _require_model

COLUMNS = ("id", "model", "version", "at", "score", "label", "latency_ms", "entity", "shadow_of")
_REQUIRED = ("id", "model", "version", "at", "record", "latency_ms")


def insert_predictions(store: Store, rows: Iterable[Mapping[str, Any]]) -> int:
    """Store prediction rows, skipping ids already stored; returns how many were new.

    Row keys are the ``predictions`` columns; `at` may be a tz-aware datetime or an ISO
    string (naive means UTC), unknown keys are ignored. Raises `DataError` when a row cannot
    be stored at all (missing field, wrong type, refused by the database), so a caller can
    set that row aside; `StoreError` means the store is unreachable and a retry may work.

    Example::

        insert_predictions(store, [{"id": "9f0c...", "model": "churn", "version": 3,
                                    "at": "2026-05-01T10:00:00+00:00", "record": {"plan": "pro"},
                                    "score": 0.82, "label": True, "latency_ms": 4.1}])
    """
    values: dict[str, dict[str, Any]] = {}
    for row in rows:
        clean = _clean(row)
        values.setdefault(clean["id"], clean)  # the first of duplicate ids wins, as in the DB
    if not values:
        return 0
    batch = list(values.values())

    def work(conn: Connection) -> int:
        statement = _insert_ignoring_duplicates(conn).returning(t.predictions.c.id)
        try:
            return len(conn.execute(statement, batch).all())
        except (sa_exc.DataError, sa_exc.IntegrityError) as exc:
            raise DataError(_refused(exc, batch)) from exc
        except sa_exc.StatementError as exc:
            if isinstance(exc, sa_exc.DBAPIError):
                raise  # a connection or server problem: the store decides (StoreError)
            raise DataError(_refused(exc, batch)) from exc

    return store._run(work, write=True)


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    """``INSERT ... ON CONFLICT (id) DO NOTHING`` (PostgreSQL) or ``INSERT OR IGNORE`` (SQLite)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(t.predictions).on_conflict_do_nothing(index_elements=["id"])
    if conn.dialect.name == "sqlite":
        return sqlite.insert(t.predictions).on_conflict_do_nothing(index_elements=["id"])
    raise DataError(f"the prediction log supports SQLite and PostgreSQL, not {conn.dialect.name}")


def _refused(exc: sa_exc.StatementError, batch: list[dict[str, Any]]) -> str:
    first = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
    ids = ", ".join(row["id"] for row in batch[:3]) + (", ..." if len(batch) > 3 else "")
    return f"the store refused {len(batch)} prediction row(s) ({ids}): {first}"


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row as the table's columns, with types checked now rather than by the driver."""
    missing = [key for key in _REQUIRED if row.get(key) is None]
    if missing:
        raise DataError(
            f"prediction row {row.get('id')!r} lacks {', '.join(missing)}: every row needs "
            f"{', '.join(_REQUIRED)}"
        )
    try:
        entity = row.get("entity")
        score = row.get("score")
        return {
            "id": str(row["id"]),
            "model": str(row["model"]),
            "version": int(row["version"]),
            "at": _utc(row["at"]),
            "record": row["record"],
            "score": None if score is None else float(score),
            "label": row.get("label"),
            "latency_ms": float(row["latency_ms"]),
            "entity": None if entity is None else str(entity),
            "shadow_of": row.get("shadow_of"),
        }
    except (TypeError, ValueError) as exc:
        raise DataError(f"prediction row {row.get('id')!r} has a wrong type: {exc}") from None


def _utc(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def read_predictions(
    store: Store,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """`model`'s logged predictions in time order, `since` <= at < `until`.

    Columns: id, model, version, at (UTC), score, label, latency_ms, entity, shadow_of,
    record (the input as a dict) and one ``input.<field>`` column per input field, so an
    analyst can filter on inputs without parsing JSON. `limit` keeps the newest rows.
    Raises `NotFoundError` for a model the store has never heard of.

    Example::

        frame = read_predictions(store, "churn", since=datetime.now(UTC) - timedelta(hours=1))
        frame.groupby("version")["score"].mean()
    """
    table = t.predictions
    query = sa.select(table).where(table.c.model == model)
    if since is not None:
        query = query.where(table.c.at >= _aware(since, "since"))
    if until is not None:
        query = query.where(table.c.at < _aware(until, "until"))
    if limit is not None:
        query = query.order_by(table.c.at.desc(), table.c.id.desc()).limit(max(limit, 0))
    else:
        query = query.order_by(table.c.at, table.c.id)

    def work(conn: Connection) -> list[dict[str, Any]]:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        if not rows and not _exists(conn, table, table.c.model == model):
            _require_model(conn, model)  # NotFoundError listing the models there are
        return rows

    rows = store._run(work, write=False)
    if limit is not None:
        rows.reverse()
    return _frame(rows)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name}={value!r} is naive: pass a timezone-aware datetime (UTC)")
    return value


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    base = pd.DataFrame(rows, columns=[*COLUMNS, "record"])
    base["at"] = pd.to_datetime(base["at"], utc=True)
    base["version"] = base["version"].astype("int64")
    for column in ("score", "latency_ms"):
        base[column] = base[column].astype("float64")
    inputs = pd.DataFrame.from_records([row["record"] for row in rows], index=base.index)
    if inputs.empty:
        return base
    return pd.concat([base, inputs.add_prefix("input.")], axis=1)


def count_predictions(store: Store, model: str | None = None) -> int:
    """How many predictions are stored, for `model` or for every model."""
    query = sa.select(sa.func.count()).select_from(t.predictions)
    if model is not None:
        query = query.where(t.predictions.c.model == model)
    return int(store._run(lambda conn: conn.execute(query).scalar_one(), write=False))

"""Reading the prediction log back, for analysts and exports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod.predlog._entries import COLUMNS
from mlprod.registry import require_model
from mlprod.store import MetadataStore, row_exists
from mlprod.store import schema as t


def read_predictions(
    store: MetadataStore,
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

    def work(conn: Connection) -> tuple[list[dict[str, Any]], bool]:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        return rows, bool(rows) or row_exists(conn, table, table.c.model == model)

    rows, known = store.read(work)
    if not known:
        require_model(store, model)  # NotFoundError listing the models there are
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


def count_predictions(store: MetadataStore, model: str | None = None) -> int:
    """How many predictions are stored, for `model` or for every model."""
    query = sa.select(sa.func.count()).select_from(t.predictions)
    if model is not None:
        query = query.where(t.predictions.c.model == model)
    return int(store.read(lambda conn: conn.execute(query).scalar_one()))

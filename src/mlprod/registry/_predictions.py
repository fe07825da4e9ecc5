"""The prediction log in the metadata store: idempotent batch inserts, reads for analysts.

Inserts are keyed by the prediction id and ignore ids already stored, because the spool in
front of them delivers at least once (a flusher killed between insert and commit replays
its batch). Storage is therefore exactly once without any coordination between servers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
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
    batch = _unique([_clean(row) for row in rows])
    if not batch:
        return 0
    return store._run(lambda conn: _insert_rows(conn, batch), write=True)


def prediction_entry(
    model: str,
    records: Sequence[Any],
    predictions: Sequence[Mapping[str, Any]],
    *,
    at: datetime,
    latency_ms: float,
    entity: str | None = None,
    shadow_of: Sequence[str] | None = None,
    body: bytes | None = None,
) -> dict[str, Any]:
    """One request's predictions as one prediction-log entry (a line in the spool).

    Why one entry per request rather than one row per prediction: serialising a request's
    records and answers in one go costs a tenth of building a row for each, and PostgreSQL
    expands entries into rows itself. `predictions` are the answers (id, version, score,
    label); `entity` names the record field holding the entity key; `shadow_of` gives, per
    record, the id of the answer a shadow prediction stands beside. `body`, the request's
    JSON body holding exactly `records` under "records", is spliced in as it came instead
    of serialising the records again (unless it spans lines: the spool is line-based).
    """
    entry: dict[str, Any] = {
        "rows": len(predictions),  # first, so a reader can count rows without parsing
        "model": model,
        "at": at,
        "latency_ms": latency_ms,
        "entity": entity,
        "predictions": predictions,
    }
    if body is not None and b"\n" not in body:
        entry["body"] = orjson.Fragment(body)
    else:
        entry["records"] = records
    if shadow_of is not None:
        entry["shadow_of"] = shadow_of
    return entry


def entry_size(entry: Mapping[str, Any]) -> int:
    """How many prediction rows a log entry stands for (a plain row stands for one)."""
    predictions = entry.get("predictions")
    return len(predictions) if isinstance(predictions, list) else 1


_ROWS = re.compile(rb'\{"rows":(\d+),')  # how `prediction_entry` lines start


def line_rows(line: bytes) -> int | None:
    """How many rows a log entry's JSON line stands for; None when it is not a JSON object.

    A `prediction_entry` line says so in its first bytes; anything else is parsed.
    """
    found = _ROWS.match(line)
    if found is not None:
        return int(found[1])
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return entry_size(entry) if isinstance(entry, dict) else None


def entry_rows(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The prediction rows (``predictions`` columns) a log entry stands for.

    A plain row is its own single row. Raises `DataError` for an entry whose records and
    predictions do not pair up.
    """
    if "predictions" not in entry:
        return [dict(entry)]
    records, predictions = entry.get("records"), entry.get("predictions")
    body = entry.get("body")
    if records is None and isinstance(body, dict):
        records = body.get("records")
    if not (isinstance(records, list) and isinstance(predictions, list)) or len(records) != len(
        predictions
    ):
        raise DataError(
            "a prediction log entry needs lists 'records' and 'predictions' of equal length"
        )
    shadow_of = entry.get("shadow_of") or [None] * len(records)
    model, at, latency_ms = entry.get("model"), entry.get("at"), entry.get("latency_ms")
    entity = entry.get("entity")
    rows = []
    for record, prediction, shadow in zip(records, predictions, shadow_of, strict=False):
        key = record.get(entity) if entity and isinstance(record, dict) else None
        answer = prediction if isinstance(prediction, dict) else {}
        rows.append(
            {
                "id": answer.get("id"),
                "model": model,
                "version": answer.get("version"),
                "at": at,
                "record": record,
                "score": answer.get("score"),
                "label": answer.get("label"),
                "latency_ms": latency_ms,
                "entity": None if key is None else str(key),
                "shadow_of": shadow,
            }
        )
    return rows


def insert_entries(store: Store, lines: Sequence[bytes]) -> int:
    """Store prediction-log entries given as JSON lines; returns how many rows were new.

    Lines are `prediction_entry`s or plain rows. On PostgreSQL request entries travel as
    they are, in one JSON document, and the database expands them into rows: the writing
    process spends well under a microsecond per row instead of twelve. On SQLite they are
    expanded here. Raises like `insert_predictions` (`DataError` for a line that is not a
    JSON object).
    """
    if not lines:
        return 0
    if store.dialect != "postgresql":
        expanded = [row for line in lines for row in entry_rows(_entry(line))]
        return insert_predictions(store, expanded)  # parsed before the write transaction
    grouped: list[bytes] = []
    plain: list[bytes] = []
    for line in lines:
        (grouped if _ROWS.match(line) else plain).append(line)
    rows = _unique([_clean(_entry(line)) for line in plain])
    document = (b"[" + b",".join(grouped) + b"]").decode()

    def work(conn: Connection) -> int:
        inserted = _insert_rows(conn, rows)
        if grouped:
            try:
                inserted += int(conn.exec_driver_sql(_EXPAND_ENTRIES, (document,)).rowcount)
            except (sa_exc.DataError, sa_exc.IntegrityError, sa_exc.ProgrammingError) as exc:
                first = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
                raise DataError(
                    f"the store refused a batch of prediction log entries ({len(grouped)}): {first}"
                ) from exc
        return inserted

    return store._run(work, write=True)


def _entry(line: bytes) -> dict[str, Any]:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"a prediction log line is not JSON: {exc}") from None
    if not isinstance(entry, dict):
        raise DataError("a prediction log line is not a JSON object")
    return entry


def _unique(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The first of duplicate ids wins, as in the database."""
    values: dict[str, tuple[Any, ...]] = {}
    for row in batch:
        values.setdefault(row[0], row)
    return list(values.values())


def _insert_rows(conn: Connection, batch: list[tuple[Any, ...]]) -> int:
    if not batch:
        return 0
    sql, at = _INSERT.get(conn.dialect.name, (None, None))
    if sql is None or at is None:
        raise DataError(
            f"the prediction log supports SQLite and PostgreSQL, not {conn.dialect.name}"
        )
    params = [(*row[:3], at(row[3]), *row[4:]) for row in batch]
    try:
        return int(conn.exec_driver_sql(sql, params).rowcount)
    except (sa_exc.DataError, sa_exc.IntegrityError) as exc:
        raise DataError(_refused(exc, batch)) from exc
    except sa_exc.StatementError as exc:
        if isinstance(exc, sa_exc.DBAPIError) and not isinstance(exc, sa_exc.ProgrammingError):
            raise  # a connection or server problem: the store decides (StoreError)
        raise DataError(_refused(exc, batch)) from exc


# The one hot write path: rows go to the driver's executemany as prepared tuples, skipping
# SQLAlchemy's per-row bind processing (3x cheaper, and the flusher shares the server's
# CPU). Each backend gets what its column types expect (SQLite: SQLAlchemy's DATETIME
# text, cached since a batch repeats few timestamps); the contract tests read every
# column back through the table definitions on both backends.
_COLUMNS = "id, model, version, at, record, score, label, latency_ms, entity, shadow_of"
_INSERT: dict[str, tuple[str, Callable[[datetime], Any]]] = {
    "sqlite": (
        f"INSERT INTO predictions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        functools.lru_cache(maxsize=256)(lambda at: at.strftime("%Y-%m-%d %H:%M:%S.%f")),
    ),
    "postgresql": (
        f"INSERT INTO predictions ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s::json, %s, %s::json, "
        "%s, %s, %s) ON CONFLICT (id) DO NOTHING",
        lambda at: at,
    ),
}

# PostgreSQL expands a JSON array of request entries into rows: each entry's fields are
# read once (a materialized step, so a large entry is not re-parsed per row), then its
# records, answers and shadow links are walked side by side. A JSON null label is stored
# as SQL NULL, as the row path does.
_EXPAND_ENTRIES = f"""
WITH entry AS MATERIALIZED (
    SELECT e->>'model' AS model, (e->>'at')::timestamptz AS at,
           (e->>'latency_ms')::float8 AS latency_ms, e->>'entity' AS entity,
           coalesce(e->'records', e->'body'->'records') AS records,
           e->'predictions' AS predictions,
           coalesce(e->'shadow_of', '[]'::jsonb) AS shadow_of
    FROM jsonb_array_elements(%s::jsonb) AS e
)
INSERT INTO predictions ({_COLUMNS})
SELECT x.answer->>'id', entry.model, (x.answer->>'version')::int, entry.at, x.record::json,
       (x.answer->>'score')::float8, nullif(x.answer->'label', 'null'::jsonb)::json,
       entry.latency_ms, x.record->>entry.entity, x.shadow
FROM entry CROSS JOIN LATERAL ROWS FROM (
    jsonb_array_elements(entry.records),
    jsonb_array_elements(entry.predictions),
    jsonb_array_elements_text(entry.shadow_of)
) AS x(record, answer, shadow)
ON CONFLICT (id) DO NOTHING
"""


def _refused(exc: sa_exc.StatementError, batch: list[tuple[Any, ...]]) -> str:
    first = str(exc.orig if exc.orig is not None else exc).splitlines()[0]
    ids = ", ".join(row[0] for row in batch[:3]) + (", ..." if len(batch) > 3 else "")
    return f"the store refused {len(batch)} prediction row(s) ({ids}): {first}"


def _clean(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The row as the table's columns in order, with types checked now, not by the driver."""
    missing = [key for key in _REQUIRED if row.get(key) is None]
    if missing:
        raise DataError(
            f"prediction row {row.get('id')!r} lacks {', '.join(missing)}: every row needs "
            f"{', '.join(_REQUIRED)}"
        )
    try:
        entity, score, label = row.get("entity"), row.get("score"), row.get("label")
        return (
            str(row["id"]),
            str(row["model"]),
            int(row["version"]),
            _utc(row["at"]),
            t.json_dumps(row["record"]),
            None if score is None else float(score),
            None if label is None else t.json_dumps(label),
            float(row["latency_ms"]),
            None if entity is None else str(entity),
            row.get("shadow_of"),
        )
    except (TypeError, ValueError) as exc:
        raise DataError(f"prediction row {row.get('id')!r} has a wrong type: {exc}") from None


def _utc(value: Any) -> datetime:
    return t.as_utc(value) if isinstance(value, datetime) else t.parse_utc(str(value))


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

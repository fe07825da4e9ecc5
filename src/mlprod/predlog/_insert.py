"""The prediction log in the metadata store: idempotent batch inserts.

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
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from mlprod._time import as_utc, parse_utc
from mlprod.errors import DataError
from mlprod.predlog._entries import ROWS_PREFIX, entry_rows
from mlprod.store import MetadataStore, json_dumps

_REQUIRED = ("id", "model", "version", "at", "record", "latency_ms")


def insert_predictions(store: MetadataStore, rows: Iterable[Mapping[str, Any]]) -> int:
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
    return store.write(lambda conn: _insert_rows(conn, batch))


def insert_entries(store: MetadataStore, lines: Sequence[bytes]) -> int:
    """Store prediction-log entries given as JSON lines; returns how many rows were new.

    Lines are `prediction_entry`s or plain rows. On PostgreSQL request entries travel as
    they are, in one JSON document, and the database expands them into rows: the writing
    process spends well under a microsecond per row instead of twelve. On SQLite they are
    expanded here. Raises like `insert_predictions` (`DataError` for a line that is not a
    JSON object).
    """
    if not lines:
        return 0
    if store.dialect != "postgresql":  # parsed before the write transaction
        batch = _unique([row for line in lines for row in _entry_tuples(_entry(line))])
        if not batch:
            return 0
        return store.write(lambda conn: _insert_rows(conn, batch))
    grouped: list[bytes] = []
    plain: list[bytes] = []
    for line in lines:
        (grouped if ROWS_PREFIX.match(line) else plain).append(line)
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

    return store.write(work)


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


@functools.lru_cache(maxsize=256)  # a request's rows share their time
def _sqlite_at(at: datetime | str) -> str:
    """SQLAlchemy's DATETIME text; the log's own UTC spelling (`_time`) by slicing it."""
    if isinstance(at, str):
        return at[:10] + " " + (at[11:26] if len(at) == _ISO_MICRO else at[11:19] + ".000000")
    return at.isoformat(" ", "microseconds")[:26]  # UTC already; strftime drops a year's 0s


_INSERT: dict[str, tuple[str, Callable[[datetime | str], Any]]] = {
    "sqlite": (
        f"INSERT INTO predictions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        _sqlite_at,
    ),
    "postgresql": (
        f"INSERT INTO predictions ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s::json, %s, %s::json, "
        "%s, %s, %s) ON CONFLICT (id) DO NOTHING",
        lambda at: parse_utc(at) if type(at) is str else at,
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
            _time(row["at"]),
            json_dumps(row["record"]),
            None if score is None else float(score),
            None if label is None else json_dumps(label),
            float(row["latency_ms"]),
            None if entity is None else str(entity),
            row.get("shadow_of"),
        )
    except (TypeError, ValueError) as exc:
        raise DataError(f"prediction row {row.get('id')!r} has a wrong type: {exc}") from None


def _entry_tuples(entry: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """``[_clean(row) for row in entry_rows(entry)]`` without building a dict per row.

    On SQLite the flusher expands every entry itself, on the server's core: what a
    request's rows share (model, time, latency) is checked and converted once here. Any
    entry this path does not take as it is goes the long way, which raises the same errors.
    """
    records, predictions = entry.get("records"), entry.get("predictions")
    body = entry.get("body")
    if records is None and isinstance(body, dict):
        records = body.get("records")
    model, at, latency_ms = entry.get("model"), entry.get("at"), entry.get("latency_ms")
    if (
        not isinstance(records, list)
        or not isinstance(predictions, list)
        or len(records) != len(predictions)
        or model is None
        or at is None
        or latency_ms is None
    ):
        return [_clean(row) for row in entry_rows(entry)]
    entity = entry.get("entity")
    shadow_of = entry.get("shadow_of") or [None] * len(records)
    try:
        model, when, latency = str(model), _time(at), float(latency_ms)
        rows = []
        for record, answer, shadow in zip(records, predictions, shadow_of, strict=False):
            ident, version = answer["id"], answer["version"]  # TypeError unless a dict
            key = record.get(entity) if entity and isinstance(record, dict) else None
            score, label = answer.get("score"), answer.get("label")
            if ident is None or version is None or record is None:
                raise ValueError("a required field is missing")
            rows.append(
                (
                    str(ident),
                    model,
                    int(version),
                    when,
                    json_dumps(record),
                    None if score is None else float(score),
                    None if label is None else json_dumps(label),
                    latency,
                    None if key is None else str(key),
                    shadow,
                )
            )
    except (TypeError, ValueError, KeyError):
        return [_clean(row) for row in entry_rows(entry)]
    return rows


def _utc(value: Any) -> datetime:
    return as_utc(value) if isinstance(value, datetime) else parse_utc(str(value))


_UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?\+00:00")
_ISO_MICRO = len("2026-05-01T10:00:00.123456+00:00")


def _time(value: Any) -> datetime | str:
    """A row's time, checked: the text as it came when it is how the log spells UTC times
    (what a datetime in UTC becomes in JSON), else a UTC datetime.

    Why keep the text: SQLite stores text, and parsing a time only to format it again
    cost a served record's row 2.6 µs of the flusher's CPU; slicing costs a tenth of it.
    """
    if type(value) is str and _UTC_TEXT.fullmatch(value) is not None:
        datetime.fromisoformat(value)  # ValueError unless it is a real time
        return value
    return _utc(value)

"""The prediction log's entry format: one JSON line per request in the spool.

A request's records and answers travel as one entry (`prediction_entry`); `entry_rows`
expands an entry into one row per prediction, the shape of the ``predictions`` table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from mlprod.errors import DataError

COLUMNS = ("id", "model", "version", "at", "score", "label", "latency_ms", "entity", "shadow_of")
ROWS_PREFIX = re.compile(rb'\{"rows":(\d+),')  # how `prediction_entry` lines start


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


def line_rows(line: bytes) -> int | None:
    """How many rows a log entry's JSON line stands for; None when it is not a JSON object.

    A `prediction_entry` line says so in its first bytes; anything else is parsed.
    """
    found = ROWS_PREFIX.match(line)
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

"""Which logged prediction an outcome is about, and what its version is.

An outcome names a served prediction (the `predictions` table) or a batch job's row
(`batch_predictions`, whose model, version and time live in its job's row); both are read
into the same shape: id, model, version, time, score, the label it answered and whether
an outcome was already counted for it (``batch`` marks where a batch row lives).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod.monitoring._classes import is_multiclass
from mlprod.store import schema as t

ENTITY_SETTLE = timedelta(seconds=5)  # spools deliver within a second; five leaves margin


def find_predictions(
    conn: Connection, pending: Sequence[Mapping[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Outcome id -> the answered prediction it is about, for those already logged.

    An outcome by entity waits until its time is `ENTITY_SETTLE` old, so a prediction
    made just before it has left its server's spool and can be the one it matches.
    """
    by_id = _predictions_by_id(conn, [o["prediction_id"] for o in pending if o["prediction_id"]])
    settled_before = datetime.now(UTC) - ENTITY_SETTLE
    found = {}
    for outcome in pending:
        if outcome["prediction_id"] is not None:
            prediction = by_id.get(outcome["prediction_id"])
        elif outcome["event_time"] <= settled_before:
            prediction = _prediction_by_entity(conn, outcome)
        else:
            prediction = None
        if prediction is not None:
            found[outcome["id"]] = prediction
    return found


PREDICTION_COLUMNS = (
    t.predictions.c.id,
    t.predictions.c.model,
    t.predictions.c.version,
    t.predictions.c.at,
    t.predictions.c.score,
    t.predictions.c.label,
    t.predictions.c.labelled,
)


def _predictions_by_id(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    query = sa.select(*PREDICTION_COLUMNS).where(
        t.predictions.c.id.in_(ids), t.predictions.c.shadow_of.is_(None)
    )
    found = {row.id: dict(row._mapping) for row in conn.execute(query)}
    return found | _batch_by_id(conn, [i for i in ids if i not in found])


# A batch job's prediction: its row in `batch_predictions`, its model, version and time
# from the job's row, in the shape of a `predictions` row (``batch`` marks where it lives).
_BATCH_COLUMNS = (
    t.batch_predictions.c.job,
    t.batch_predictions.c.seq,
    t.batch_jobs.c.model,
    t.batch_jobs.c.version,
    t.batch_jobs.c.scored_at.label("at"),
    t.batch_predictions.c.score,
    t.batch_predictions.c.label,
    t.batch_predictions.c.labelled,
)
_BATCH_JOIN = t.batch_predictions.join(
    t.batch_jobs, t.batch_jobs.c.key == t.batch_predictions.c.job
)


MAX_SEQ = 2**63  # batch row numbers are stored as signed 64-bit integers


def batch_prediction_id(job: str, seq: int) -> str:
    """The prediction id of row `seq` of the batch job whose key is `job` (32 hex digits)."""
    return f"{job}{seq:016x}"


def split_batch_id(prediction_id: str) -> tuple[str, int] | None:
    """(job key, seq) of what may be a batch prediction id; None when it cannot be one."""
    if len(prediction_id) != 32:
        return None
    try:
        seq = int(prediction_id[16:], 16)
    except ValueError:
        return None
    # A served id ends in 64 random bits, half of them beyond any stored row number
    # (a signed 64-bit column): such an id is no batch row, and must not reach a query.
    return (prediction_id[:16], seq) if seq < MAX_SEQ else None


def _batch_row(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    job, seq = found.pop("job"), found.pop("seq")
    return {"id": batch_prediction_id(job, seq), "batch": (job, seq), **found}


def _batch_by_id(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    keys = [key for key in map(split_batch_id, ids) if key is not None]
    found: dict[str, dict[str, Any]] = {}
    b = t.batch_predictions
    for start in range(0, len(keys), 500):
        wanted = sa.tuple_(b.c.job, b.c.seq).in_(keys[start : start + 500])
        query = sa.select(*_BATCH_COLUMNS).select_from(_BATCH_JOIN).where(wanted)
        found.update((p["id"], p) for p in map(_batch_row, conn.execute(query)))
    return found


def _prediction_by_entity(conn: Connection, outcome: Mapping[str, Any]) -> dict[str, Any] | None:
    """The entity's latest answered prediction at or before the outcome's time."""
    p = t.predictions
    query = (
        sa.select(*PREDICTION_COLUMNS)
        .where(p.c.model == outcome["model"], p.c.entity == outcome["entity"])
        .where(p.c.at <= outcome["event_time"], p.c.shadow_of.is_(None))
        .order_by(p.c.at.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    served = None if row is None else dict(row._mapping)
    batch = _batch_by_entity(conn, outcome)
    if served is None or (batch is not None and batch["at"] > served["at"]):
        return batch
    return served


def _batch_by_entity(conn: Connection, outcome: Mapping[str, Any]) -> dict[str, Any] | None:
    """The entity's latest batch prediction at or before the outcome's time."""
    b, j = t.batch_predictions, t.batch_jobs
    query = (
        sa.select(*_BATCH_COLUMNS)
        .select_from(_BATCH_JOIN)
        .where(b.c.entity == outcome["entity"], j.c.model == outcome["model"])
        .where(j.c.scored_at <= outcome["event_time"])
        .order_by(j.c.scored_at.desc(), b.c.seq.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else _batch_row(row)


def shadows_of(conn: Connection, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not ids:
        return {}
    query = sa.select(*PREDICTION_COLUMNS, t.predictions.c.shadow_of).where(
        t.predictions.c.shadow_of.in_(ids)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(query):
        found.setdefault(row.shadow_of, []).append(dict(row._mapping))
    return found


def versions_of(
    conn: Connection, predictions: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, int], dict[str, Any]]:
    """(model, version) -> its threshold, classes and whether it is multiclass."""
    keys = {(p["model"], p["version"]) for p in predictions}
    if not keys:
        return {}
    v = t.versions
    query = sa.select(v.c.model, v.c.version, v.c.threshold, v.c.signature).where(
        sa.tuple_(v.c.model, v.c.version).in_(sorted(keys))
    )
    found = {}
    for row in conn.execute(query):
        classes = row.signature.get("classes", [False, True])
        found[(row.model, row.version)] = {
            "threshold": row.threshold,
            "classes": classes,
            "multiclass": is_multiclass(classes),
        }
    return found

"""Outcomes: the observed labels that arrive days after the prediction, joined to it later.

An outcome names its prediction by id, or by entity and time (the entity's latest
prediction at or before that time). Ingesting only stores it, as pending; `match_outcomes`
joins pending outcomes to predictions already in the log, so an outcome that arrives
before its prediction row (still in a server's spool) simply matches on a later pass.
Outcomes that match nothing stay pending and are counted, never dropped.

Matching adds each outcome once to the labelled statistics of its prediction's window
(and of every shadow that scored the same request), in the same transaction that marks
it matched: rows are locked while they are matched, so concurrent matchers never count
one twice.

Example::

    ingest_outcomes(store, [{"prediction_id": "9f0c...", "label": True}])
    ingest_outcomes(store, [{"entity": "C0042", "time": "2026-05-03T00:00:00Z",
                             "label": False}], model="churn")
    match_outcomes(store, bucket_seconds=60)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mlprod._time import as_utc
from mlprod.errors import SchemaError
from mlprod.features import boolean_value, category_string
from mlprod.monitoring._live import empty_window_row, merge_rows, window_start
from mlprod.monitoring._reference import SCORE_BINS, score_bin
from mlprod.spec import NAME_PATTERN
from mlprod.store import Store
from mlprod.store import schema as t

MATCH_BATCH = 2000
ENTITY_SETTLE = timedelta(seconds=5)  # spools deliver within a second; five leaves margin
SHADOW_LOOKBACK = timedelta(days=1)
MAX_OUTCOMES = 100_000  # per call; larger files are ingested in slices


def ingest_outcomes(
    store: Store, outcomes: Sequence[Mapping[str, Any]], *, model: str | None = None
) -> dict[str, int]:
    """Store observed labels; returns how many were new and how many were already there.

    Each outcome has ``label`` and either ``prediction_id`` or ``entity`` and ``time``
    (ISO 8601; naive means UTC). Outcomes by entity need `model` (or their own ``model``).
    Raises `SchemaError` naming the outcome and field when one is malformed; nothing is
    stored then.
    """
    if len(outcomes) > MAX_OUTCOMES:
        raise SchemaError(f"{len(outcomes)} outcomes in one call; send at most {MAX_OUTCOMES}")
    received = datetime.now(UTC)
    rows = [_outcome_row(o, i, model, received) for i, o in enumerate(outcomes)]
    if not rows:
        return {"received": 0, "duplicates": 0}

    def work(conn: Connection) -> int:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(t.outcomes).on_conflict_do_nothing().returning(t.outcomes.c.id)
        # RETURNING, not rowcount: PostgreSQL reports -1 for inserts that return rows
        return sum(len(conn.execute(statement, row).all()) for row in rows)

    new = store.write(work)
    return {"received": new, "duplicates": len(rows) - new}


def _outcome_row(
    outcome: Mapping[str, Any], index: int, model: str | None, received: datetime
) -> dict[str, Any]:
    def bad(field: str, expected: str) -> SchemaError:
        return SchemaError(
            f"outcome {index}: {field} must be {expected}",
            fields=[{"record": index, "field": field, "expected": expected}],
        )

    if not isinstance(outcome, Mapping):
        raise bad("outcome", "an object with label and prediction_id (or entity and time)")
    if outcome.get("label") is None:
        raise bad("label", "the observed value of the target (not null)")
    name = outcome.get("model") or model
    prediction_id, entity = outcome.get("prediction_id"), outcome.get("entity")
    row: dict[str, Any] = {
        "model": name,
        "prediction_id": None,
        "entity": None,
        "event_time": None,
        "label": outcome["label"],
        "received_at": received,
        "status": "pending",
    }
    if prediction_id is not None:
        if not isinstance(prediction_id, str) or not 0 < len(prediction_id) <= 32:
            raise bad("prediction_id", "the id a prediction answered with (32 hex digits)")
        row["prediction_id"] = prediction_id
    elif entity is not None:
        if not name:
            raise bad("model", "the model's name when outcomes name an entity")
        row["entity"], row["event_time"] = str(entity), _time(outcome.get("time"), bad)
    else:
        raise bad("prediction_id", "present, or entity and time instead")
    if name is not None:
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
            raise bad("model", "a model name: lower case letters, digits, - and _")
        row["model"] = name
    return row


def _time(value: Any, bad: Any) -> datetime:
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise bad("time", "an ISO 8601 time such as 2026-05-01T10:00:00Z") from None
    return as_utc(when)


def match_outcomes(store: Store, *, bucket_seconds: int = 60) -> int:
    """Join pending outcomes to logged predictions; returns how many were settled.

    Settled means matched and counted, or refused (invalid label, or a prediction that
    already has its outcome). Also gives late shadows the label of their matched request.
    """
    total, after = 0, 0
    while True:
        batch = functools.partial(_match_batch, bucket_seconds=bucket_seconds, after=after)
        # conflicts: a server merging live counts may insert the same new window first
        done, after, read = store.write(batch, conflicts=True)
        total += done
        if read < MATCH_BATCH:
            break
    store.write(functools.partial(_late_shadows, bucket_seconds=bucket_seconds), conflicts=True)
    return total


def _match_batch(conn: Connection, bucket_seconds: int, after: int) -> tuple[int, int, int]:
    """Match one batch of pending outcomes with ids above `after`: (settled, last id, read)."""
    query = (
        sa.select(t.outcomes)
        .where(t.outcomes.c.status == "pending", t.outcomes.c.id > after)
        .order_by(t.outcomes.c.id)
        .limit(MATCH_BATCH)
        .with_for_update(skip_locked=True)
    )
    pending = [dict(row._mapping) for row in conn.execute(query)]
    if not pending:
        return 0, after, 0
    matched = _find_predictions(conn, pending)
    shadows = _shadows_of(conn, [p["id"] for p in matched.values()])
    scored = [*matched.values(), *(s for group in shadows.values() for s in group)]
    versions = _versions_of(conn, scored)
    rows, counted, settled = [], [], 0
    for outcome in pending:
        prediction = matched.get(outcome["id"])
        if prediction is None:
            continue  # not logged yet, or never: stays pending and counted
        info = versions[(prediction["model"], prediction["version"])]
        observed = observed_class(outcome["label"], info)
        if prediction["labelled"] or prediction["id"] in counted:
            note = f"prediction {prediction['id']} already has an outcome; the first one counts"
            _settle(conn, outcome["id"], prediction, note, status="duplicate")
        elif observed is None:
            _settle(conn, outcome["id"], prediction, _invalid_note(outcome["label"], info))
        else:
            _settle(conn, outcome["id"], prediction, None)
            for each in (prediction, *shadows.get(prediction["id"], ())):
                threshold = versions[(each["model"], each["version"])]["threshold"]
                rows.append(_labelled(each, observed, threshold, bucket_seconds))
                counted.append(each["id"])
        settled += 1
    batch = {p["id"]: p["batch"] for p in matched.values() if "batch" in p}
    _count(conn, rows, counted, batch)
    return settled, pending[-1]["id"], len(pending)


def _count(
    conn: Connection,
    rows: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    batch: Mapping[str, tuple[str, int]] | None = None,
) -> None:
    """Add labelled rows to their windows and mark their predictions counted, together.

    `batch` maps the ids of batch predictions among `ids` to their (job, seq).
    """
    batch = batch or {}
    merge_rows(
        conn, t.window_stats, ("model", "version", "window_start"), _summed(rows), empty_window_row
    )
    served = [i for i in ids if i not in batch]
    for start in range(0, len(served), 500):
        chunk = served[start : start + 500]
        conn.execute(
            sa.update(t.predictions).where(t.predictions.c.id.in_(chunk)).values(labelled=True)
        )
    b = t.batch_predictions
    keys = [batch[i] for i in ids if i in batch]
    for start in range(0, len(keys), 500):
        wanted = sa.tuple_(b.c.job, b.c.seq).in_(keys[start : start + 500])
        conn.execute(sa.update(b).where(wanted).values(labelled=True))


def _late_shadows(conn: Connection, bucket_seconds: int) -> int:
    """Shadows logged after their request's outcome matched get that outcome's label now.

    Shadows score off the response path, so a shadow's row can reach the log after the
    outcome of its request was matched. Outcomes matched in the last day are rechecked.
    """
    s, o = t.predictions, t.outcomes
    since = datetime.now(UTC) - SHADOW_LOOKBACK
    query = (
        sa.select(*_PREDICTION_COLUMNS, o.c.label)
        .join(o, o.c.matched_id == s.c.shadow_of)
        .where(o.c.status == "matched", o.c.received_at >= since, s.c.labelled.is_(None))
        .limit(MATCH_BATCH)
    )
    late = [dict(row._mapping) for row in conn.execute(query)]
    versions = _versions_of(conn, late)
    rows, ids = [], []
    for shadow in late:
        info = versions[(shadow["model"], shadow["version"])]
        observed = observed_class(shadow["label"], info)
        if observed is not None:
            rows.append(_labelled(shadow, observed, info["threshold"], bucket_seconds))
        ids.append(shadow["id"])
    _count(conn, rows, ids)
    return len(ids)


def _find_predictions(
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


def _settle(
    conn: Connection,
    outcome_id: int,
    prediction: Mapping[str, Any],
    note: str | None,
    *,
    status: str | None = None,
) -> None:
    conn.execute(
        sa.update(t.outcomes)
        .where(t.outcomes.c.id == outcome_id)
        .values(
            status=status or ("matched" if note is None else "invalid"),
            matched_id=prediction["id"],
            version=prediction["version"],
            model=prediction["model"],
            note=note,
        )
    )


_PREDICTION_COLUMNS = (
    t.predictions.c.id,
    t.predictions.c.model,
    t.predictions.c.version,
    t.predictions.c.at,
    t.predictions.c.score,
    t.predictions.c.labelled,
)


def _predictions_by_id(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    query = sa.select(*_PREDICTION_COLUMNS).where(
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
        sa.select(*_PREDICTION_COLUMNS)
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


def _shadows_of(conn: Connection, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not ids:
        return {}
    query = sa.select(*_PREDICTION_COLUMNS, t.predictions.c.shadow_of).where(
        t.predictions.c.shadow_of.in_(ids)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(query):
        found.setdefault(row.shadow_of, []).append(dict(row._mapping))
    return found


def _versions_of(
    conn: Connection, predictions: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, int], dict[str, Any]]:
    keys = {(p["model"], p["version"]) for p in predictions}
    if not keys:
        return {}
    v = t.versions
    query = sa.select(v.c.model, v.c.version, v.c.threshold, v.c.signature).where(
        sa.tuple_(v.c.model, v.c.version).in_(sorted(keys))
    )
    return {
        (row.model, row.version): {
            "threshold": row.threshold,
            "classes": row.signature.get("classes", [False, True]),
        }
        for row in conn.execute(query)
    }


def observed_class(label: Any, info: Mapping[str, Any]) -> int | None:
    """1 for the positive class, 0 for the negative, None for anything else."""
    negative, positive = info["classes"]
    text = category_string(label).lower()
    if text == category_string(positive).lower():
        return 1
    if text == category_string(negative).lower():
        return 0
    if isinstance(positive, bool) or isinstance(negative, bool):
        value = boolean_value(label)
        if not np.isnan(value):
            return int(value == float(bool(positive)))
    return None


def _invalid_note(label: Any, info: Mapping[str, Any]) -> str:
    negative, positive = info["classes"]
    return f"label {label!r} is neither class of the model ({negative!r} or {positive!r})"


def _labelled(
    prediction: Mapping[str, Any], observed: int, threshold: float, bucket_seconds: int
) -> dict[str, Any]:
    """One labelled prediction's share of its window; its score bin is kept as an index."""
    score = prediction["score"]
    predicted = score is not None and score >= threshold
    return {
        "model": prediction["model"],
        "version": prediction["version"],
        "window_start": window_start(prediction["at"], bucket_seconds),
        "labelled": 1,
        "tp": int(predicted and observed == 1),
        "fp": int(predicted and observed == 0),
        "fn": int(not predicted and observed == 1),
        "tn": int(not predicted and observed == 0),
        "pos_bins": [score_bin(score)] if score is not None and observed == 1 else [],
        "neg_bins": [score_bin(score)] if score is not None and observed == 0 else [],
    }


def _summed(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per window, histograms counted once: `merge_rows` adds each key once.

    Each outcome carries its score bin, not a histogram, so matching costs the same per
    outcome however fine the score bins are.
    """
    keys = ("model", "version", "window_start")
    summed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        current = summed.get(key)
        if current is None:
            summed[key] = {
                **row,
                "pos_bins": list(row["pos_bins"]),
                "neg_bins": list(row["neg_bins"]),
            }
            continue
        for name, value in row.items():
            if name in keys:
                continue
            if isinstance(value, list):
                current[name].extend(value)
            else:
                current[name] += value
    for row in summed.values():
        for bins, hist in (("pos_bins", "pos_hist"), ("neg_bins", "neg_hist")):
            counts = np.bincount(np.asarray(row.pop(bins), dtype=np.int64), minlength=SCORE_BINS)
            row[hist] = counts.tolist()
    return list(summed.values())


def outcome_counts(store: Store, model: str | None = None) -> dict[str, int]:
    """Outcomes by status: pending (not matched yet), matched, invalid, duplicate.

    With `model`, also ``unassigned``: pending outcomes sent by prediction id alone, whose
    model is known only once they match.
    """
    o = t.outcomes
    query = sa.select(o.c.status, sa.func.count()).group_by(o.c.status)
    if model is not None:
        query = query.where(o.c.model == model)
    rows = store.read(lambda conn: conn.execute(query).all())
    counts = {"pending": 0, "matched": 0, "invalid": 0, "duplicate": 0}
    counts.update({status: int(count) for status, count in rows})
    if model is not None:  # outcomes sent by id alone learn their model when they match
        waiting = sa.select(sa.func.count()).where(o.c.status == "pending", o.c.model.is_(None))
        counts["unassigned"] = int(store.read(lambda c: c.execute(waiting).scalar_one()))
    return counts

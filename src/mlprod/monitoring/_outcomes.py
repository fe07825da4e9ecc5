"""Outcomes: the observed labels that arrive days after the prediction, joined to it later.

An outcome names its prediction by id, or by entity and time (the entity's latest
prediction at or before that time). Ingesting only stores it, as pending; `match_outcomes`
joins pending outcomes to predictions already in the log, so an outcome that arrives
before its prediction row (still in a server's spool) simply matches on a later pass.
Outcomes that match nothing stay pending and are counted, never dropped.

Matching adds each outcome once to the labelled statistics of its prediction's window
(and of every shadow that scored the same request), in the same transaction that marks
it matched: rows are locked while they are matched, so concurrent matchers never count
one twice. A multiclass version's outcome is one of its classes: the answer was right or
wrong, and its cell of the confusion matrix is added beside (see `_tally`).

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

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod._time import as_utc
from mlprod.errors import SchemaError
from mlprod.monitoring._live import empty_feature_row, empty_window_row, merge_rows
from mlprod.monitoring._lookup import PREDICTION_COLUMNS, find_predictions, shadows_of, versions_of
from mlprod.monitoring._tally import WINDOW_KEYS, invalid_note, labelled_row, observed_index, summed
from mlprod.spec import NAME_PATTERN
from mlprod.store import Store
from mlprod.store import schema as t

MATCH_BATCH = 2000
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
        # imported here: PostgreSQL's dialect module loads every driver's dialect
        from sqlalchemy.dialects import postgresql, sqlite

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
    matched = find_predictions(conn, pending)
    shadows = shadows_of(conn, [p["id"] for p in matched.values()])
    scored = [*matched.values(), *(s for group in shadows.values() for s in group)]
    versions = versions_of(conn, scored)
    rows: list[dict[str, Any]] = []
    counted: list[str] = []
    settled = 0
    for outcome in pending:
        prediction = matched.get(outcome["id"])
        if prediction is None:
            continue  # not logged yet, or never: stays pending and counted
        label, info = outcome["label"], versions[(prediction["model"], prediction["version"])]
        if prediction["labelled"] or prediction["id"] in counted:
            note = f"prediction {prediction['id']} already has an outcome; the first one counts"
            _settle(conn, outcome["id"], prediction, note, status="duplicate")
        elif observed_index(label, info) is None:
            _settle(conn, outcome["id"], prediction, invalid_note(label, info))
        else:
            _settle(conn, outcome["id"], prediction, None)
            for each in (prediction, *shadows.get(prediction["id"], ())):
                row = labelled_row(
                    each, label, versions[(each["model"], each["version"])], bucket_seconds
                )
                rows.extend([row] if row is not None else [])
                counted.append(each["id"])  # a shadow without that class is settled too
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
    windows, confusion = summed(rows)
    merge_rows(conn, t.window_stats, WINDOW_KEYS, windows, empty_window_row)
    features = ("model", "version", "feature", "window_start")
    merge_rows(conn, t.feature_counts, features, confusion, empty_feature_row)
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
        sa.select(*PREDICTION_COLUMNS, o.c.label.label("observed"))
        .join(o, o.c.matched_id == s.c.shadow_of)
        .where(o.c.status == "matched", o.c.received_at >= since, s.c.labelled.is_(None))
        .limit(MATCH_BATCH)
    )
    late = [dict(row._mapping) for row in conn.execute(query)]
    versions = versions_of(conn, late)
    rows, ids = [], []
    for shadow in late:
        info = versions[(shadow["model"], shadow["version"])]
        row = labelled_row(shadow, shadow["observed"], info, bucket_seconds)
        rows.extend([row] if row is not None else [])
        ids.append(shadow["id"])
    _count(conn, rows, ids)
    return len(ids)


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

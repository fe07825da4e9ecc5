"""Retention on SQLite and PostgreSQL: old rows go, new rows, other models and running jobs stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from mlprod.errors import NotFoundError
from mlprod.predlog import (
    _prune,
    count_predictions,
    insert_batch_predictions,
    insert_predictions,
    prune_predictions,
)
from mlprod.registry import audit_log, create_run
from mlprod.store import Store
from mlprod.store import schema as t

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CUT = NOW - timedelta(days=30)


def _served(model: str, first: int, count: int, at: datetime) -> list[dict[str, Any]]:
    return [
        {"id": f"{model[:4]}{i:028x}", "model": model, "version": 1, "at": at,
         "record": {"plan": "pro"}, "score": 0.5, "label": True, "latency_ms": 1.0}
        for i in range(first, first + count)
    ]  # fmt: skip


def _job(
    store: Store,
    model: str,
    key: str,
    at: datetime,
    rows: int,
    status: str = "done",
    active: datetime | None = None,
) -> None:
    """A batch job scored at `at` whose row was last updated at `active` (default `at`)."""
    values = {
        "id": "job-" + key, "model": model, "version": 1, "engine": "local", "source": {},
        "destination": {}, "chunk_rows": 1000, "status": status, "rows": rows,
        "counted_chunks": 1, "scored_at": at, "started_at": at, "updated_at": active or at,
        "finished_at": at, "user_name": "ana", "error": None, "timings": {}, "key": key,
    }  # fmt: skip
    store.write(lambda conn: conn.execute(sa.insert(t.batch_jobs).values(values)))
    insert_batch_predictions(
        store, job=key, seqs=np.arange(rows), scores=np.full(rows, 0.25), entities=None
    )


def _batch_rows(store: Store, key: str) -> int:
    rows = t.batch_predictions
    query = sa.select(sa.func.count()).select_from(rows).where(rows.c.job == key)
    return int(store.read(lambda conn: conn.execute(query).scalar_one()))


@pytest.fixture
def logged(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Two models with old and new served rows; old done, old running and new batch jobs."""
    monkeypatch.setattr(_prune, "SLICE_ROWS", 7)  # many slices, and slices that end exactly
    for model in ("churn", "fraud"):
        create_run(store, model, user="ana", spec={}, git_commit=None, library_versions={})
    insert_predictions(store, _served("churn", 0, 30, CUT - timedelta(days=1)))
    insert_predictions(store, _served("churn", 30, 5, CUT + timedelta(days=1)))
    insert_predictions(store, _served("fraud", 0, 9, CUT - timedelta(days=2)))
    _job(store, "churn", "a" * 16, CUT - timedelta(days=3), 21)  # 3 slices exactly
    running = CUT + timedelta(hours=1)  # started before the cut, still at work after it
    _job(store, "churn", "b" * 16, CUT - timedelta(days=3), 10, status="running", active=running)
    _job(store, "churn", "e" * 16, CUT - timedelta(days=5), 6, status="failed")  # abandoned
    _job(store, "churn", "c" * 16, CUT + timedelta(hours=1), 4)
    _job(store, "fraud", "d" * 16, CUT - timedelta(seconds=1), 8)
    return store


def test_a_dry_run_counts_what_would_go_and_deletes_nothing(logged: Store) -> None:
    result = prune_predictions(logged, before=CUT, dry_run=True)
    assert result.served == {"churn": 30, "fraud": 9}
    assert result.batch == {"churn": 27, "fraud": 8}
    assert result.jobs == {"churn": 2, "fraud": 1}
    assert result.rows == 74
    assert count_predictions(logged) == 44
    assert _batch_rows(logged, "a" * 16) == 21
    assert audit_log(logged) == []


def test_pruning_one_model_keeps_new_rows_running_jobs_and_other_models(logged: Store) -> None:
    result = prune_predictions(logged, before=CUT, model="churn", actor="ana")
    assert (result.served, result.batch, result.jobs) == (
        {"churn": 30},
        {"churn": 27},
        {"churn": 2},
    )
    assert count_predictions(logged, "churn") == 5
    assert count_predictions(logged, "fraud") == 9
    churn = sa.select(t.predictions.c.at).where(t.predictions.c.model == "churn")
    left = logged.read(lambda conn: conn.execute(churn).scalars().all())
    assert left == [CUT + timedelta(days=1)] * 5
    assert _batch_rows(logged, "a" * 16) == 0
    assert _batch_rows(logged, "b" * 16) == 10  # active after the cut: a resume needs them
    assert _batch_rows(logged, "e" * 16) == 0  # failed and left before the cut
    assert _batch_rows(logged, "c" * 16) == 4
    assert _batch_rows(logged, "d" * 16) == 8
    (entry,) = audit_log(logged, "churn")
    assert (entry.actor, entry.action) == ("ana", "prune-predictions")
    assert "30 served and 27 batch" in (entry.reason or "")
    # pruning again finds nothing, and audits nothing
    again = prune_predictions(logged, before=CUT, model="churn")
    assert again.rows == 0
    assert len(audit_log(logged, "churn")) == 1


def test_pruning_every_model_and_refusing_unknown_ones(logged: Store) -> None:
    result = prune_predictions(logged, before=CUT)
    assert result.models() == ["churn", "fraud"]
    assert result.rows == 74
    assert count_predictions(logged) == 5
    assert _batch_rows(logged, "d" * 16) == 0
    with pytest.raises(NotFoundError, match="nope"):
        prune_predictions(logged, before=CUT, model="nope")
    with pytest.raises(ValueError, match="naive"):
        prune_predictions(logged, before=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="in the future"):
        prune_predictions(logged, before=datetime.now(UTC) + timedelta(minutes=5))


def _outcome(
    received: datetime,
    model: str | None = "churn",
    *,
    matched: str | None = None,
    by_id: str | None = None,
    entity: str | None = None,
    status: str = "matched",
) -> dict[str, Any]:
    """An outcome row as matching leaves it: `matched` names its prediction once settled."""
    return {
        "model": model, "prediction_id": by_id, "entity": entity,
        "event_time": received if entity else None, "label": True, "received_at": received,
        "status": status if matched else "pending", "matched_id": matched,
        "version": 1 if matched else None, "note": None,
    }  # fmt: skip


def _outcomes(store: Store) -> list[str]:
    """Each stored outcome as the prediction it names, or its entity."""
    o = t.outcomes
    query = sa.select(sa.func.coalesce(o.c.matched_id, o.c.prediction_id, o.c.entity))
    return sorted(store.read(lambda conn: conn.execute(query).scalars().all()))


def test_outcomes_go_with_their_predictions(logged: Store) -> None:
    churn = [row["id"] for row in _served("churn", 0, 35, NOW)]  # 0-29 old, 30-34 new
    (fraud,) = (row["id"] for row in _served("fraud", 0, 1, NOW))
    day = timedelta(days=1)
    gone = [
        _outcome(CUT - day / 2, matched=churn[0]),  # its served prediction is pruned
        _outcome(CUT - 2 * day, matched="a" * 16 + f"{3:016x}"),  # its job is pruned
        _outcome(CUT - 10 * day, entity="cust-1"),  # pending since before the cut
        _outcome(CUT - day, "fraud", matched=fraud, status="invalid"),
        _outcome(CUT - 5 * day, None, by_id="f" * 32),  # by id alone, never logged
    ]
    kept = [
        _outcome(CUT - day / 24, matched=churn[30]),  # its prediction is newer than the cut
        _outcome(CUT + day, matched=churn[1]),  # received after the cut
        _outcome(CUT + day / 24, entity="cust-2"),  # pending, received after the cut
        _outcome(CUT - 2 * day, matched="b" * 16 + f"{3:016x}"),  # a job still at work
        _outcome(CUT - day / 24, None, by_id=churn[32]),  # logged, not matched yet
    ]
    logged.write(lambda conn: conn.execute(sa.insert(t.outcomes), [*gone, *kept]))
    everything = _outcomes(logged)

    counted = prune_predictions(logged, before=CUT, dry_run=True)
    assert (counted.outcomes, counted.unassigned, counted.outcome_rows) == (
        {"churn": 3, "fraud": 1}, 1, 5)  # fmt: skip
    assert _outcomes(logged) == everything

    one = prune_predictions(logged, before=CUT, model="churn", actor="ana")
    assert (one.outcomes, one.unassigned) == ({"churn": 3}, 0)
    (entry,) = audit_log(logged, "churn")
    assert "and 3 outcomes received before it" in (entry.reason or "")

    rest = prune_predictions(logged, before=CUT)
    assert (rest.outcomes, rest.unassigned) == ({"fraud": 1}, 1)
    assert _outcomes(logged) == sorted(
        row["matched_id"] or row["prediction_id"] or row["entity"] for row in kept
    )

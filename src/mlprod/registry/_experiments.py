"""Experiments in the store: each run's tuning trials and training curves.

Once tuning ends, each trial is copied from its Optuna study into the ``trials`` table
with its run, where `list_trials` (and a dashboard) reads it without knowing Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod.errors import NotFoundError
from mlprod.registry._records import CurveRecord, TrialRecord
from mlprod.registry._runs import get_run
from mlprod.store import MetadataStore, plain_json, row_exists
from mlprod.store import schema as t


def record_trials(store: MetadataStore, run_id: str, rows: Sequence[Mapping[str, Any]]) -> int:
    """Store a run's trials (replacing any stored before); returns how many.

    Each row carries ``candidate``, ``number``, ``state``, ``value``, ``params``,
    ``fold_scores``, optional ``best_iteration``, ``error``, ``retry_of``, and times.
    """
    values = [
        {
            "run_id": run_id,
            "candidate": row["candidate"],
            "number": int(row["number"]),
            "state": row["state"],
            "value": row.get("value"),
            "params": plain_json(row.get("params", {})),
            "fold_scores": plain_json(row.get("fold_scores", [])),
            "attrs": plain_json(
                {key: row.get(key) for key in ("best_iteration", "error", "retry_of")}
            ),
            "started_at": row.get("started_at"),
            "finished_at": row.get("finished_at"),
            "seconds": row.get("seconds"),
        }
        for row in rows
    ]

    def work(conn: Connection) -> int:
        _require_run(conn, run_id)
        conn.execute(sa.delete(t.trials).where(t.trials.c.run_id == run_id))
        if values:
            conn.execute(sa.insert(t.trials), values)
        return len(values)

    return store.write(work)


def list_trials(
    store: MetadataStore, run_id: str, candidate: str | None = None
) -> list[TrialRecord]:
    """A run's trials by candidate then number; `run_id` may be a unique prefix.

    Example::

        best = max(list_trials(store, run.id), key=lambda t: t.value or float("-inf"))
    """
    full = get_run(store, run_id).id
    query = sa.select(t.trials).where(t.trials.c.run_id == full)
    if candidate is not None:
        query = query.where(t.trials.c.candidate == candidate)
    query = query.order_by(t.trials.c.candidate, t.trials.c.number)
    rows = store.read(lambda conn: conn.execute(query).all())
    return [_trial(row) for row in rows]


def _trial(row: Any) -> TrialRecord:
    data = dict(row._mapping)
    attrs = data.pop("attrs") or {}
    return TrialRecord.model_validate({**data, **attrs})


def record_curves(
    store: MetadataStore, run_id: str, curves: Mapping[str, Mapping[str, Any]]
) -> None:
    """Store each candidate's training curve for a run (replacing any stored before)."""
    values = [
        {"run_id": run_id, "candidate": name, "curve": plain_json(dict(curve))}
        for name, curve in curves.items()
    ]

    def work(conn: Connection) -> None:
        _require_run(conn, run_id)
        conn.execute(sa.delete(t.curves).where(t.curves.c.run_id == run_id))
        if values:
            conn.execute(sa.insert(t.curves), values)

    store.write(work)


def record_curve(
    store: MetadataStore, run_id: str, candidate: str, curve: Mapping[str, Any]
) -> None:
    """Store (or replace) one candidate's curve while the run goes on, e.g. after an epoch.

    A dashboard polling `read_curves` then shows training as it happens.
    """
    value = {"run_id": run_id, "candidate": candidate, "curve": plain_json(dict(curve))}
    where = (t.curves.c.run_id == run_id) & (t.curves.c.candidate == candidate)

    def work(conn: Connection) -> None:
        _require_run(conn, run_id)
        conn.execute(sa.delete(t.curves).where(where))
        conn.execute(sa.insert(t.curves), [value])

    store.write(work)


def read_curves(store: MetadataStore, run_id: str) -> list[CurveRecord]:
    """A run's training curves, one per candidate that grows in rounds, by name."""
    full = get_run(store, run_id).id
    query = sa.select(t.curves).where(t.curves.c.run_id == full).order_by(t.curves.c.candidate)
    rows = store.read(lambda conn: conn.execute(query).all())
    return [
        CurveRecord.model_validate({"run_id": r.run_id, "candidate": r.candidate, **r.curve})
        for r in rows
    ]


def _require_run(conn: Connection, run_id: str) -> None:
    if not row_exists(conn, t.runs, t.runs.c.id == run_id):
        raise NotFoundError(f"no run {run_id!r}; records belong to a run from create_run")

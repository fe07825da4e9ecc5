"""Experiments in the store: the shared Optuna storage, stored trials and training curves.

Optuna keeps its own tables (about a dozen). They never mix with the metadata tables:
beside a SQLite store they live in their own file (``optuna.db`` in the same folder), in
PostgreSQL in their own schema (``optuna``, created on first use), so a study is shared
by every worker that can reach the store, and migrations of either side never collide.
Once tuning ends, each trial is copied into the ``trials`` table with its run, where
`list_trials` (and a dashboard) reads it without knowing Optuna.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod.errors import NotFoundError
from mlprod.registry import _tables as t
from mlprod.registry._records import CurveRecord, TrialRecord
from mlprod.registry._store import Store, _exists

OPTUNA_SCHEMA = "optuna"
OPTUNA_FILE = "optuna.db"
OPTUNA_LOCK = 0x6F7074756E61  # "optuna" in ASCII: the advisory lock for creating its tables


def study_storage_url(store: Store) -> tuple[str, dict[str, Any]]:
    """Where the store's Optuna studies live: (URL, SQLAlchemy engine arguments)."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            return "sqlite:///:memory:", {}
        path = Path(database).resolve().parent / OPTUNA_FILE
        return f"sqlite:///{path}", {"connect_args": {"timeout": 60}}
    if url.get_backend_name() == "postgresql":
        options = {"options": f"-csearch_path={OPTUNA_SCHEMA}", "connect_timeout": 10}
        return url.render_as_string(hide_password=False), {
            "connect_args": options,
            "pool_pre_ping": True,
        }
    return url.render_as_string(hide_password=False), {}


@contextmanager
def study_storage(store: Store, *, heartbeat: int = 10) -> Iterator[Any]:
    """The Optuna storage beside `store`, with heartbeats so dead workers' trials are retried.

    A trial whose worker stops beating for ``3 * heartbeat`` seconds is failed by the
    next worker that looks, and queued again with the same params.

    Example::

        with Store.open(url) as store, study_storage(store, heartbeat=5) as storage:
            optuna.load_study(study_name="...", storage=storage)
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url, engine_kwargs = study_storage_url(store)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings(), _creation_lock(store):
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat,
            grace_period=3 * heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        )
    try:
        yield storage
    finally:
        storage.engine.dispose()


@contextmanager
def _creation_lock(store: Store) -> Iterator[None]:
    """One process at a time creates Optuna's schema and tables: workers start together,
    and concurrent ``CREATE SCHEMA``/``CREATE TABLE`` race in PostgreSQL and SQLite alike.
    """
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_lock(OPTUNA_LOCK)))
            try:
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}")
                conn.commit()
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(OPTUNA_LOCK)))
                conn.commit()
        return
    if store.dialect == "sqlite" and store.engine.url.database not in (None, "", ":memory:"):
        with store.engine.connect().execution_options(mlprod_write=True) as conn, conn.begin():
            yield  # BEGIN IMMEDIATE on the metadata file: a lock the other workers wait on
        return
    yield


def study_name(run_id: str, candidate: str) -> str:
    """The study of one candidate in one run."""
    return f"{run_id}:{candidate}"


def record_trials(store: Store, run_id: str, rows: Sequence[Mapping[str, Any]]) -> int:
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
            "params": t.plain_json(row.get("params", {})),
            "fold_scores": t.plain_json(row.get("fold_scores", [])),
            "attrs": t.plain_json(
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

    return store._run(work, write=True)


def list_trials(store: Store, run_id: str, candidate: str | None = None) -> list[TrialRecord]:
    """A run's trials by candidate then number; `run_id` may be a unique prefix.

    Example::

        best = max(list_trials(store, run.id), key=lambda t: t.value or float("-inf"))
    """
    full = store.get_run(run_id).id
    query = sa.select(t.trials).where(t.trials.c.run_id == full)
    if candidate is not None:
        query = query.where(t.trials.c.candidate == candidate)
    query = query.order_by(t.trials.c.candidate, t.trials.c.number)
    rows = store._run(lambda conn: conn.execute(query).all(), write=False)
    return [_trial(row) for row in rows]


def _trial(row: Any) -> TrialRecord:
    data = dict(row._mapping)
    attrs = data.pop("attrs") or {}
    return TrialRecord.model_validate({**data, **attrs})


def record_curves(store: Store, run_id: str, curves: Mapping[str, Mapping[str, Any]]) -> None:
    """Store each candidate's training curve for a run (replacing any stored before)."""
    values = [
        {"run_id": run_id, "candidate": name, "curve": t.plain_json(dict(curve))}
        for name, curve in curves.items()
    ]

    def work(conn: Connection) -> None:
        _require_run(conn, run_id)
        conn.execute(sa.delete(t.curves).where(t.curves.c.run_id == run_id))
        if values:
            conn.execute(sa.insert(t.curves), values)

    store._run(work, write=True)


def read_curves(store: Store, run_id: str) -> list[CurveRecord]:
    """A run's training curves, one per candidate that grows in rounds, by name."""
    full = store.get_run(run_id).id
    query = sa.select(t.curves).where(t.curves.c.run_id == full).order_by(t.curves.c.candidate)
    rows = store._run(lambda conn: conn.execute(query).all(), write=False)
    return [
        CurveRecord.model_validate({"run_id": r.run_id, "candidate": r.candidate, **r.curve})
        for r in rows
    ]


def _require_run(conn: Connection, run_id: str) -> None:
    if not _exists(conn, t.runs, t.runs.c.id == run_id):
        raise NotFoundError(f"no run {run_id!r}; records belong to a run from create_run")

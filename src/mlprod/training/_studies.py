"""Where tuning studies live: Optuna's storage beside the metadata store.

Optuna keeps its own tables (about a dozen). They never mix with the metadata tables:
beside a SQLite store they live in their own file (``optuna.db`` in the same folder), in
PostgreSQL in their own schema (``optuna``, created on first use), so a study is shared
by every worker that can reach the store, and migrations of either side never collide.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlprod.store import MetadataStore

OPTUNA_SCHEMA = "optuna"
OPTUNA_FILE = "optuna.db"
OPTUNA_LOCK = 0x6F7074756E61  # "optuna" in ASCII: the advisory lock for creating its tables


def study_storage_url(store: MetadataStore) -> tuple[str, dict[str, Any]]:
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
def study_storage(store: MetadataStore, *, heartbeat: int = 10) -> Iterator[Any]:
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
def _creation_lock(store: MetadataStore) -> Iterator[None]:
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

"""Job runs in the store: enqueued once, claimed by one scheduler, held by a lease.

Why a row per run and a lease on it: several schedulers may watch one store. A due run
is inserted under a unique key (model, job, what triggered it, attempt), so however many
schedulers notice the same cron slot or alert, one row exists. Claiming flips it from
pending to running in one conditional update, so one scheduler runs it. The owner renews
its lease while the job runs; a scheduler killed with ``kill -9`` stops renewing, and once
the lease has expired any other scheduler marks the run abandoned and queues the retry.

Example::

    run = enqueue(store, "churn", "retrain", trigger="cron", key="cron:2026-12-07T02:00Z",
                  scheduled_for=slot)
    claimed = claim(store, run.id, owner="host:123", lease=timedelta(minutes=1), now=now)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod.errors import NotFoundError
from mlprod.scheduling._records import JobRun
from mlprod.store import MetadataStore, plain_json
from mlprod.store import schema as t

ENDED = ("succeeded", "failed", "abandoned")


def enqueue(
    store: MetadataStore,
    model: str,
    job: str,
    *,
    trigger: str,
    key: str,
    scheduled_for: datetime,
    not_before: datetime | None = None,
    attempt: int = 1,
) -> JobRun | None:
    """Insert a pending run; None when that (model, job, key, attempt) exists already."""
    row = {
        "model": model,
        "job": job,
        "trigger": trigger,
        "trigger_key": key,
        "attempt": attempt,
        "state": "pending",
        "scheduled_for": scheduled_for,
        "not_before": not_before or scheduled_for,
        "output": {},
    }

    def work(conn: Connection) -> JobRun | None:
        # imported here: PostgreSQL's dialect module loads every driver's dialect
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(t.job_runs).on_conflict_do_nothing().returning(t.job_runs)
        found = conn.execute(statement, row).first()
        return None if found is None else _record(found)

    return store.write(work)


def claim(
    store: MetadataStore, run_id: int, *, owner: str, lease: timedelta, now: datetime
) -> JobRun | None:
    """Take a due pending run for `owner`; None when another scheduler took it first, or
    when another run of the same job is running (one retraining of a model at a time).
    """
    r = t.job_runs

    def work(conn: Connection) -> JobRun | None:
        pending = conn.execute(_by_id(run_id).where(r.c.state == "pending")).first()
        if pending is None or pending.not_before > now:
            return None
        if conn.dialect.name == "postgresql":  # SQLite's write lock already serialises this
            key = int.from_bytes(
                hashlib.blake2b(f"{pending.model}/{pending.job}".encode(), digest_size=8).digest(),
                "big",
                signed=True,
            )
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        busy = sa.select(r.c.id).where(
            r.c.model == pending.model, r.c.job == pending.job, r.c.state == "running"
        )
        if conn.execute(busy.limit(1)).first() is not None:
            return None
        update = (
            sa.update(r)
            .where(r.c.id == run_id, r.c.state == "pending")
            .values(state="running", owner=owner, lease_until=now + lease, started_at=now)
        )
        if conn.execute(update).rowcount != 1:
            return None
        return _record(conn.execute(_by_id(run_id)).one())

    return store.write(work)


def due(store: MetadataStore, now: datetime, *, limit: int = 100) -> list[JobRun]:
    """Pending runs whose time has come, oldest first."""
    query = (
        sa.select(t.job_runs)
        .where(t.job_runs.c.state == "pending", t.job_runs.c.not_before <= now)
        .order_by(t.job_runs.c.not_before, t.job_runs.c.id)
        .limit(limit)
    )
    return [_record(row) for row in store.read(lambda conn: conn.execute(query).all())]


def renew(store: MetadataStore, run_id: int, *, owner: str, until: datetime) -> bool:
    """Extend `owner`'s lease; False when the run is no longer theirs (it was reaped)."""
    update = (
        sa.update(t.job_runs)
        .where(t.job_runs.c.id == run_id, t.job_runs.c.owner == owner)
        .where(t.job_runs.c.state == "running")
        .values(lease_until=until)
    )
    return bool(store.write(lambda conn: conn.execute(update).rowcount))


def finish(
    store: MetadataStore,
    run_id: int,
    *,
    owner: str,
    state: str,
    now: datetime,
    error: str | None = None,
    output: dict[str, Any] | None = None,
) -> JobRun | None:
    """Close `owner`'s run as succeeded or failed; None when it was reaped meanwhile."""
    update = (
        sa.update(t.job_runs)
        .where(t.job_runs.c.id == run_id, t.job_runs.c.owner == owner)
        .where(t.job_runs.c.state == "running")
        .values(state=state, ended_at=now, error=error, output=plain_json(output or {}))
    )

    def work(conn: Connection) -> JobRun | None:
        if conn.execute(update).rowcount != 1:
            return None
        return _record(conn.execute(_by_id(run_id)).one())

    return store.write(work)


def reap(store: MetadataStore, now: datetime) -> list[JobRun]:
    """Mark runs whose lease expired as abandoned (their scheduler died); returns them."""
    expired = (
        sa.select(t.job_runs)
        .where(t.job_runs.c.state == "running", t.job_runs.c.lease_until < now)
        .with_for_update()
    )

    def work(conn: Connection) -> list[JobRun]:
        rows = conn.execute(expired).all()
        for row in rows:
            conn.execute(
                sa.update(t.job_runs)
                .where(t.job_runs.c.id == row.id, t.job_runs.c.state == "running")
                .values(
                    state="abandoned",
                    ended_at=now,
                    error=f"scheduler {row.owner} stopped renewing its lease; "
                    f"it expired at {row.lease_until.isoformat()}",
                )
            )
        return [_record(conn.execute(_by_id(row.id)).one()) for row in rows]

    return store.write(work)


def get_job_run(store: MetadataStore, run_id: int) -> JobRun:
    """One job run by id; NotFoundError says how to list them."""
    row = store.read(lambda conn: conn.execute(_by_id(run_id)).first())
    if row is None:
        raise NotFoundError(f"no job run {run_id}; `mlprod jobs list` shows recent runs")
    return _record(row)


def list_job_runs(
    store: MetadataStore,
    model: str | None = None,
    *,
    job: str | None = None,
    states: Sequence[str] | None = None,
    triggers: Sequence[str] | None = None,
    limit: int = 50,
) -> list[JobRun]:
    """Runs, newest first (by when they were due, then id)."""
    query = sa.select(t.job_runs)
    if model is not None:
        query = query.where(t.job_runs.c.model == model)
    if job is not None:
        query = query.where(t.job_runs.c.job == job)
    if states:
        query = query.where(t.job_runs.c.state.in_(list(states)))
    if triggers:
        query = query.where(t.job_runs.c.trigger.in_(list(triggers)))
    query = query.order_by(t.job_runs.c.scheduled_for.desc(), t.job_runs.c.id.desc())
    rows = store.read(lambda conn: conn.execute(query.limit(max(limit, 0))).all())
    return [_record(row) for row in rows]


def _by_id(run_id: int) -> sa.Select[Any]:
    return sa.select(t.job_runs).where(t.job_runs.c.id == run_id)


def _record(row: Any) -> JobRun:
    return JobRun.model_validate(dict(row._mapping))

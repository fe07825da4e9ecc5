"""Retention for the prediction log: rows older than a cut-off leave the store in slices.

Why: the log is the one table that grows with traffic, and nothing else ever removes a
row. On SQLite, two million old rows made each logged row cost the flusher 2.4 times the
CPU of an empty store (`benchmarks/retention.py`): its indexes no longer fit in memory.
Monitoring keeps what it needs in windowed counts (``window_stats``, ``feature_counts``),
so pruning raw rows loses no chart; what a pruned row can no longer do is take a late
outcome or be exported.

Rows go in slices of `SLICE_ROWS`, one short transaction each, so a server's flusher and
a running batch job keep writing while a large log is pruned. A finished batch job's rows
go by the time it scored them; a job that failed or is still running keeps its rows while
it was active after the cut-off (a resumed job relies on the chunks it already logged).
Each pruned model gets an audit row saying who removed what.

Outcomes go with their predictions: one received before the cut-off goes once the log no
longer keeps its prediction, pruned or never logged. A pending outcome whose prediction is
gone can never match, and every matching pass would read it again, forever.

Example::

    pruned = prune_predictions(store, before=utc_now() - timedelta(days=90), actor="ana")
    pruned.served, pruned.batch, pruned.jobs
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod._time import as_utc, utc_now
from mlprod.errors import DataError
from mlprod.registry import audit_in, require_model
from mlprod.store import MetadataStore
from mlprod.store import schema as t

SLICE_ROWS = 20_000  # rows per transaction: a flusher waits at most one slice for the lock


@dataclass
class PruneResult:
    """What a prune removed (or would remove, for a dry run), per model and in total."""

    before: datetime
    dry_run: bool
    served: dict[str, int] = field(default_factory=dict)  # model -> served predictions
    batch: dict[str, int] = field(default_factory=dict)  # model -> batch job rows
    jobs: dict[str, int] = field(default_factory=dict)  # model -> batch jobs emptied
    outcomes: dict[str, int] = field(default_factory=dict)  # model -> outcomes
    unassigned: int = 0  # outcomes sent by prediction id alone whose prediction never came

    @property
    def rows(self) -> int:
        """Predictions, served and batch."""
        return sum(self.served.values()) + sum(self.batch.values())

    @property
    def outcome_rows(self) -> int:
        return sum(self.outcomes.values()) + self.unassigned

    def models(self) -> list[str]:
        return sorted(set(self.served) | set(self.batch) | set(self.outcomes))


def prune_predictions(
    store: MetadataStore,
    *,
    before: datetime,
    model: str | None = None,
    actor: str = "unknown",
    dry_run: bool = False,
) -> PruneResult:
    """Delete logged predictions made before `before`, of `model` or of every model.

    Served predictions go by their time; a finished batch job's rows go together, by the
    time the job scored them; an unfinished job's once it was last active before `before`.
    Outcomes received before `before` go when their prediction does (or never came); with
    no `model`, that includes those sent by prediction id alone. With `dry_run` nothing is
    deleted and the counts say what would be. Raises `NotFoundError` for a model the store
    has never heard of; `ValueError` for a naive `before`, `DataError` for one in the
    future (it would take predictions made from now on too).
    """
    if before.tzinfo is None:
        raise ValueError(f"before={before!r} is naive: pass a timezone-aware datetime (UTC)")
    before = as_utc(before)
    if before > utc_now():
        raise DataError(
            f"before={before.isoformat()} is in the future: it would delete predictions "
            "made from now on too; pass a time in the past"
        )
    if model is not None:
        require_model(store, model)
    result = PruneResult(before=before, dry_run=dry_run)
    models = [model] if model is not None else store.read(_logged_models)
    for name in models:
        served = _prune_served(store, name, before, dry_run)
        rows, jobs = _prune_batch(store, name, before, dry_run)
        outcomes = _prune_outcomes(store, name, before, dry_run)
        if served:
            result.served[name] = served
        if rows:
            result.batch[name], result.jobs[name] = rows, jobs
        if outcomes:
            result.outcomes[name] = outcomes
        if (served or rows or outcomes) and not dry_run:
            reason = (
                f"deleted {served} served and {rows} batch predictions ({jobs} jobs) "
                f"made before {before.isoformat()}, and {outcomes} outcomes received before it"
            )
            store.write(_audit(actor, name, reason))
    if model is None:
        result.unassigned = _prune_outcomes(store, None, before, dry_run)
    return result


def _audit(actor: str, model: str, reason: str) -> Callable[[Connection], object]:
    return lambda conn: audit_in(conn, actor, "prune-predictions", model, None, None, None, reason)


def _scalar(query: sa.Select[Any]) -> Callable[[Connection], Any]:
    return lambda conn: conn.execute(query).scalar()


def _delete(statement: sa.Delete) -> Callable[[Connection], int]:
    return lambda conn: int(conn.execute(statement).rowcount)


def _logged_models(conn: Connection) -> list[str]:
    """Every registered model and every model a batch job scored (small tables: a
    DISTINCT over the log itself would read its whole index on PostgreSQL)."""
    registered = sa.select(t.models.c.name)
    batch = sa.select(t.batch_jobs.c.model).distinct()
    return sorted({row[0] for row in conn.execute(sa.union(registered, batch))})


def _prune_served(store: MetadataStore, model: str, before: datetime, dry_run: bool) -> int:
    table = t.predictions
    old = sa.and_(table.c.model == model, table.c.at < before)  # ix_predictions_model_at
    return _delete_where(store, table, old, dry_run)


def _delete_where(
    store: MetadataStore, table: sa.Table, where: sa.ColumnElement[bool], dry_run: bool
) -> int:
    """Delete `table`'s rows that match `where`, a slice of ids per transaction (or count
    them, for a dry run)."""
    if dry_run:
        return int(store.read(_scalar(sa.select(sa.func.count()).select_from(table).where(where))))
    ids = sa.select(table.c.id).where(where).limit(SLICE_ROWS).scalar_subquery()
    delete = _delete(sa.delete(table).where(table.c.id.in_(ids)))
    removed = 0
    while True:
        count = int(store.write(delete))
        removed += count
        if count < SLICE_ROWS:
            return removed


def _prune_batch(
    store: MetadataStore, model: str, before: datetime, dry_run: bool
) -> tuple[int, int]:
    """(rows, jobs) of `model`'s batch jobs done before `before`, or abandoned before it."""
    jobs, rows = t.batch_jobs, t.batch_predictions
    old = sa.select(jobs.c.key).where(
        jobs.c.model == model,
        _job_done_before(before),
        jobs.c.key.is_not(None),
        sa.exists().where(rows.c.job == jobs.c.key),  # emptied by an earlier prune: skip
    )
    keys: list[str] = list(store.read(lambda conn: conn.execute(old).scalars().all()))
    removed, emptied = 0, 0
    for key in keys:
        gone = _count_job_rows(store, key) if dry_run else _delete_job_rows(store, key)
        removed += gone
        emptied += 1 if gone else 0
    return removed, emptied


def _job_done_before(before: datetime) -> sa.ColumnElement[bool]:
    """A batch job whose rows go: finished before `before`, or abandoned before it."""
    jobs = t.batch_jobs
    finished = sa.and_(jobs.c.status == "done", jobs.c.scored_at < before)
    abandoned = sa.and_(jobs.c.status != "done", jobs.c.updated_at < before)
    return sa.or_(finished, abandoned)


def _prune_outcomes(
    store: MetadataStore, model: str | None, before: datetime, dry_run: bool
) -> int:
    """`model`'s outcomes received before `before` whose prediction the log does not keep
    (None: pending outcomes sent by prediction id alone).

    Kept means a served prediction made since `before`, or a row of a batch job that this
    prune leaves alone; so a dry run counts what a real one deletes.
    """
    o, p, jobs = t.outcomes, t.predictions, t.batch_jobs
    its = sa.func.coalesce(o.c.matched_id, o.c.prediction_id)  # None: by entity, unmatched
    kept = sa.or_(
        sa.exists().where(p.c.id == its, p.c.at >= before),
        sa.exists().where(
            jobs.c.key == sa.func.substr(its, 1, 16), sa.not_(_job_done_before(before))
        ),
    )
    owner = o.c.model.is_(None) if model is None else o.c.model == model
    old = sa.and_(owner, o.c.received_at < before, sa.not_(kept))  # ix_outcomes_received_at
    return _delete_where(store, o, old, dry_run)


def _count_job_rows(store: MetadataStore, key: str) -> int:
    rows = t.batch_predictions
    count = sa.select(sa.func.count()).select_from(rows).where(rows.c.job == key)
    return int(store.read(_scalar(count)))


def _delete_job_rows(store: MetadataStore, key: str) -> int:
    """One job's rows, a slice of consecutive row numbers per transaction (its primary key).

    Each slice starts past the last one (PostgreSQL keeps deleted rows in the index until
    vacuum, so counting from the job's first row again would walk past every slice so far).
    """
    rows = t.batch_predictions
    removed, done = 0, -1
    while True:
        ahead = sa.and_(rows.c.job == key, rows.c.seq > done)
        nth = sa.select(rows.c.seq).where(ahead).order_by(rows.c.seq)
        last = store.read(_scalar(nth.offset(SLICE_ROWS - 1).limit(1)))
        where = ahead if last is None else sa.and_(ahead, rows.c.seq <= last)
        removed += int(store.write(_delete(sa.delete(rows).where(where))))
        if last is None:
            return removed
        done = last

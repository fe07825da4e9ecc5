"""Batch jobs in the metadata store: one row per job id, so a job run again knows its state.

The row pins what a resumed run must reuse (the version, the chunk size, the time every
row is stamped with, what the source was) and how far the job got: ``counted_chunks``
says which chunks are already in the prediction log and in monitoring, ``status`` whether
the staged rows were published.

Example::

    job = get_job(store, "nightly-2026-12-01")
    job.status, job.rows
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlprod.errors import ConflictError, DataError
from mlprod.store import MetadataStore, Store
from mlprod.store import schema as t

T = TypeVar("T")
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass
class JobRecord:
    """One batch job as the store keeps it."""

    id: str
    model: str
    version: int
    engine: str
    source: dict[str, Any]
    destination: dict[str, Any]
    chunk_rows: int
    scored_at: datetime
    user_name: str
    status: str = "running"  # running, publishing, done, failed
    rows: int = 0
    counted_chunks: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    key: str | None = None  # `job_key(id)`: its prediction ids' first half

    def __post_init__(self) -> None:
        self.key = self.key or job_key(self.id)


def check_job_id(job_id: str) -> str:
    """`job_id` if it is a usable id (letters, digits, ``_.:-``, at most 64)."""
    if not JOB_ID.match(job_id):
        raise DataError(
            f"job id {job_id!r} is not usable: up to 64 letters, digits and _ . : - "
            "(starting with a letter or digit)"
        )
    return job_id


def job_key(job_id: str) -> str:
    """16 hex digits naming a job's staging and prefixing its prediction ids."""
    return hashlib.sha256(job_id.encode()).hexdigest()[:16]


def get_job(store: MetadataStore, job_id: str) -> JobRecord | None:
    """The job's row, or None for a job never started."""
    query = sa.select(t.batch_jobs).where(t.batch_jobs.c.id == job_id)
    row = store.read(lambda conn: conn.execute(query).first())
    return None if row is None else JobRecord(**dict(row._mapping))


def insert_job(store: MetadataStore, job: JobRecord) -> None:
    """Record a new job; a job id already taken is a `ConflictError`."""

    def work(conn: Connection) -> None:
        if conn.execute(sa.select(t.batch_jobs.c.id).where(t.batch_jobs.c.id == job.id)).first():
            raise ConflictError(f"batch job {job.id!r} was started by another process just now")
        conn.execute(sa.insert(t.batch_jobs).values(**asdict(job)))

    store.write(work)


def update_job(conn: Connection, job_id: str, **values: Any) -> None:
    """Change a job's row inside the caller's transaction."""
    values["updated_at"] = datetime.now(UTC)
    conn.execute(sa.update(t.batch_jobs).where(t.batch_jobs.c.id == job_id).values(**values))


def set_job(store: MetadataStore, job_id: str, **values: Any) -> None:
    """Change a job's row in a transaction of its own."""
    store.write(lambda conn: update_job(conn, job_id, **values))


def same_job(job: JobRecord, expected: Mapping[str, Any]) -> None:
    """A resumed job must read, write and score as it began: refuse anything else."""
    differs = [key for key, value in expected.items() if getattr(job, key) != value]
    if differs:
        shown = "; ".join(f"{k}: was {getattr(job, k)!r}, now {expected[k]!r}" for k in differs)
        raise ConflictError(
            f"batch job {job.id!r} was started with other settings ({shown}); "
            "run it as it began, or give a new --job-id"
        )


class InTransaction:
    """The store as seen from inside one open transaction.

    Why: a chunk's prediction rows, its monitoring counts and the job's progress must
    commit together, or a resumed job would count a chunk twice. Functions that take a
    store (`insert_predictions`, `merge_live_stats`) run their work on this connection.
    """

    def __init__(self, store: MetadataStore, conn: Connection) -> None:
        self.url: str = store.url
        self.engine: Engine = store.engine
        self._dialect = store.dialect
        self._conn = conn

    @property
    def dialect(self) -> str:
        return self._dialect

    def read(self, work: Callable[[Connection], T]) -> T:
        return work(self._conn)

    def write(self, work: Callable[[Connection], T], *, conflicts: bool = False) -> T:
        return work(self._conn)

    def close(self) -> None:
        """The transaction's owner closes it."""

    def as_store(self) -> Store:
        """Typed as the `Store` some functions name; only read/write/dialect are used."""
        return cast(Store, self)

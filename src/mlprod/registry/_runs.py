"""Runs: one row per training run, written first and closed last.

A failed or killed run stays visible (status ``running`` or ``failed``); its version row,
written by `register_version`, is the commit point of a training.

Example::

    run_id = create_run(store, "churn", user="ana", spec={}, git_commit=None,
                        library_versions={})
    finish_run(store, run_id, status="finished", metrics={"roc_auc": {"value": 0.86}})
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from mlprod._time import utc_now
from mlprod.errors import ConflictError, NotFoundError, SpecError
from mlprod.registry._records import RunRecord
from mlprod.registry._refs import check_name
from mlprod.store import MetadataStore, plain_json, row_exists
from mlprod.store import schema as t

_RUN_PREFIX = re.compile(r"[0-9a-f]{4,32}")


def create_run(
    store: MetadataStore,
    model: str,
    *,
    user: str,
    spec: dict[str, Any],
    git_commit: str | None,
    library_versions: dict[str, str],
    parent_run_id: str | None = None,
) -> str:
    """Record that a run started; returns its id (32 hex digits)."""
    check_name(model)
    run_id = uuid.uuid4().hex
    row = {
        "id": run_id, "model": model, "status": "running", "user_name": user,
        "started_at": utc_now(), "spec": plain_json(spec), "params": {}, "metrics": {},
        "fingerprint": {}, "candidates": [], "git_commit": git_commit,
        "library_versions": plain_json(library_versions), "parent_run_id": parent_run_id,
    }  # fmt: skip

    def work(conn: Connection) -> None:
        parent = t.runs.c.id == parent_run_id
        if parent_run_id is not None and not row_exists(conn, t.runs, parent):
            raise NotFoundError(f"parent run {parent_run_id!r} does not exist: pass a full id")
        ensure_model(conn, model)
        conn.execute(sa.insert(t.runs).values(row))

    store.write(work)
    return run_id


def finish_run(
    store: MetadataStore,
    run_id: str,
    *,
    status: Literal["finished", "failed"],
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    fingerprint: dict[str, Any] | None = None,
    candidates: list[dict[str, Any]] | None = None,
    version: int | None = None,
    error: str | None = None,
) -> None:
    """Close a run; fields passed as None keep what the run already holds."""
    if status not in ("finished", "failed"):
        raise SpecError(f"a run finishes as 'finished' or 'failed', got {status!r}")
    given: dict[str, Any] = {"params": params, "metrics": metrics, "fingerprint": fingerprint,
             "candidates": candidates, "version": version, "error": error}  # fmt: skip
    values = {key: plain_json(value) for key, value in given.items() if value is not None}
    values.update(status=status, ended_at=utc_now())
    update = sa.update(t.runs).where(t.runs.c.id == run_id).values(values)
    if store.write(lambda conn: conn.execute(update).rowcount) == 0:
        raise NotFoundError(f"no run {run_id!r} to finish; it must come from create_run")


def get_run(store: MetadataStore, run_id: str) -> RunRecord:
    """One run by id or by a unique prefix of at least 4 characters."""
    prefix = run_id.strip().lower() if isinstance(run_id, str) else ""
    if not _RUN_PREFIX.fullmatch(prefix):
        raise NotFoundError(
            f"no run {run_id!r}: run ids are hex digits; give at least 4 of them "
            "(`mlprod runs list` shows recent runs)"
        )
    where = t.runs.c.id == prefix if len(prefix) == 32 else t.runs.c.id.like(prefix + "%")
    query = sa.select(t.runs).where(where).order_by(t.runs.c.started_at.desc()).limit(11)
    rows = store.read(lambda conn: conn.execute(query).all())
    if not rows:
        raise NotFoundError(f"no run {run_id!r}; `mlprod runs list` shows recent runs")
    if len(rows) > 1:
        shown = ", ".join(row.id for row in rows[:10]) + (", ..." if len(rows) > 10 else "")
        raise ConflictError(
            f"run prefix {run_id!r} matches {'more than 10' if len(rows) > 10 else len(rows)} "
            f"runs ({shown}); give more characters"
        )
    return run_record(rows[0])


def list_runs(
    store: MetadataStore, model: str | None = None, *, limit: int = 50
) -> list[RunRecord]:
    """The newest runs first, of one model or of all."""
    query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
    if model is not None:
        query = query.where(t.runs.c.model == model)
    rows = store.read(lambda conn: conn.execute(query.limit(max(limit, 0))).all())
    return [run_record(row) for row in rows]


def run_record(row: Row[Any]) -> RunRecord:
    """A runs row as its record (the column ``user_name`` is the record's ``user``)."""
    data = dict(row._mapping)
    data["user"] = data.pop("user_name")
    return RunRecord.model_validate(data)


def ensure_model(conn: Connection, name: str) -> None:
    """Insert the model row unless it exists, without failing when a racer inserts it too."""
    # The dialect modules are imported where they are used: PostgreSQL's loads the dialect
    # of every driver it knows, which commands that only read have no use for.
    values = {"name": name, "created_at": utc_now()}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        conn.execute(postgresql.insert(t.models).values(values).on_conflict_do_nothing())
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        conn.execute(sqlite.insert(t.models).values(values).on_conflict_do_nothing())
    elif not row_exists(conn, t.models, t.models.c.name == name):
        conn.execute(sa.insert(t.models).values(values))

"""Decisions and canaries in the store: every step of the loop, with its figures.

Example::

    decision = record_decision(store, model="churn", kind="retrain", outcome="canary",
                               reason="v4 is not worse than v3 on 812 live rows", ...)
    active_canary(store, "churn")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod.errors import ConflictError
from mlprod.scheduling._records import Canary, Decision
from mlprod.store import MetadataStore, plain_json
from mlprod.store import schema as t


def record_decision(store: MetadataStore, *, at: datetime, **fields: Any) -> Decision:
    """Store one decision; `fields` are `Decision`'s (details defaults to {})."""
    values = {
        "champion": None,
        "challenger": None,
        "metric": None,
        "champion_value": None,
        "challenger_value": None,
        "difference": None,
        "low": None,
        "high": None,
        "margin": None,
        "rows": None,
        "basis": None,
        **fields,
        "at": at,
        "details": plain_json(fields.get("details", {})),
    }

    def work(conn: Connection) -> Decision:
        key = conn.execute(sa.insert(t.decisions).values(values)).inserted_primary_key
        assert key is not None  # an INSERT always reports its key
        return Decision.model_validate({**values, "id": key[0]})

    return store.write(work)


def list_decisions(
    store: MetadataStore, model: str | None = None, *, limit: int = 50
) -> list[Decision]:
    """Decisions, newest first."""
    query = sa.select(t.decisions).order_by(t.decisions.c.at.desc(), t.decisions.c.id.desc())
    if model is not None:
        query = query.where(t.decisions.c.model == model)
    rows = store.read(lambda conn: conn.execute(query.limit(max(limit, 0))).all())
    return [Decision.model_validate(dict(row._mapping)) for row in rows]


def open_canary(
    store: MetadataStore,
    model: str,
    *,
    champion: int,
    challenger: int,
    weight: float,
    at: datetime,
) -> Canary:
    """Record a running canary; ConflictError when the model already has one."""
    values = {
        "model": model,
        "champion": champion,
        "challenger": challenger,
        "weight": weight,
        "state": "running",
        "active_model": model,
        "started_at": at,
        "looks": 0,
    }

    def work(conn: Connection) -> Canary:
        key = conn.execute(sa.insert(t.canaries).values(values)).inserted_primary_key
        assert key is not None  # an INSERT always reports its key
        return _canary({**values, "id": key[0], "ended_at": None, "reason": None})

    try:
        return store.write(work)
    except ConflictError:
        raise ConflictError(
            f"{model} already has a canary running; wait for its decision "
            f"(`mlprod jobs list --model {model}`) or roll it back with `mlprod rollback`"
        ) from None


def active_canary(store: MetadataStore, model: str) -> Canary | None:
    """The model's running canary, if any."""
    query = sa.select(t.canaries).where(t.canaries.c.active_model == model)
    row = store.read(lambda conn: conn.execute(query).first())
    return None if row is None else _canary(dict(row._mapping))


def list_canaries(store: MetadataStore, model: str, *, limit: int = 20) -> list[Canary]:
    """The model's canaries, newest first."""
    query = (
        sa.select(t.canaries)
        .where(t.canaries.c.model == model)
        .order_by(t.canaries.c.started_at.desc(), t.canaries.c.id.desc())
        .limit(limit)
    )
    rows = store.read(lambda conn: conn.execute(query).all())
    return [_canary(dict(row._mapping)) for row in rows]


def count_look(store: MetadataStore, canary_id: int) -> int:
    """Add one look to a running canary; returns the look's number (1, 2, ...)."""

    def work(conn: Connection) -> int:
        conn.execute(
            sa.update(t.canaries)
            .where(t.canaries.c.id == canary_id)
            .values(looks=t.canaries.c.looks + 1)
        )
        return int(
            conn.execute(
                sa.select(t.canaries.c.looks).where(t.canaries.c.id == canary_id)
            ).scalar_one()
        )

    return store.write(work)


def close_canary(
    store: MetadataStore, canary_id: int, *, state: str, reason: str, at: datetime
) -> bool:
    """End a running canary; False when it had ended already (another scheduler did it)."""
    update = (
        sa.update(t.canaries)
        .where(t.canaries.c.id == canary_id, t.canaries.c.state == "running")
        .values(state=state, active_model=None, ended_at=at, reason=reason)
    )
    return bool(store.write(lambda conn: conn.execute(update).rowcount))


def _canary(values: dict[str, Any]) -> Canary:
    values.pop("active_model", None)
    return Canary.model_validate(values)

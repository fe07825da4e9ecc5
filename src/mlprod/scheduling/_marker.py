"""A value that changes whenever the loop does something a live page shows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mlprod.store import MetadataStore
from mlprod.store import schema as t


def loop_marker(store: MetadataStore) -> tuple[Any, ...]:
    """Newest job run, its state changes, newest decision and canary looks: one query."""
    runs, decisions, canaries = t.job_runs, t.decisions, t.canaries
    query = sa.select(
        sa.select(sa.func.max(runs.c.id)).scalar_subquery(),
        sa.select(sa.func.count())
        .select_from(runs)
        .where(runs.c.ended_at.is_not(None))
        .scalar_subquery(),
        sa.select(sa.func.max(decisions.c.id)).scalar_subquery(),
        sa.select(sa.func.coalesce(sa.func.sum(canaries.c.looks), 0)).scalar_subquery(),
    )
    return tuple(store.read(lambda conn: conn.execute(query).one()))

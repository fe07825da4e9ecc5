"""Labelled predictions, row by row: what a version said and what then happened.

The live windows hold sums, enough for reports; comparing two versions on the same rows
(a challenger against its champion) or testing a canary needs the rows themselves: the
logged input, the score and the observed class.

Example::

    rows = labelled_predictions(store, "churn", 3, since=canary_start)
    rows["__label__"].mean(), rows["__score__"].mean()
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlprod.monitoring._classes import is_multiclass
from mlprod.monitoring._tally import observed_index
from mlprod.registry import get_version
from mlprod.store import MetadataStore
from mlprod.store import schema as t

LABEL, SCORE, AT, LATENCY = "__label__", "__score__", "__at__", "__latency_ms__"


def labelled_predictions(
    store: MetadataStore,
    model: str,
    version: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """`version`'s answered predictions that have their outcome, oldest first.

    One column per logged input field, plus ``__score__``, ``__label__`` (the observed
    class's position in the version's classes: 1 for the positive class and 0 for the
    negative one; 0..k-1 in probability order for a multiclass version), ``__at__`` and
    ``__latency_ms__``. With `limit`, the newest rows. Outcomes naming no class of the
    version are left out.
    """
    p, o = t.predictions, t.outcomes
    query = (
        sa.select(p.c.record, p.c.score, p.c.at, p.c.latency_ms, o.c.label)
        .join(o, sa.and_(o.c.matched_id == p.c.id, o.c.status == "matched"))
        .where(p.c.model == model, p.c.version == version, p.c.shadow_of.is_(None))
    )
    if since is not None:
        query = query.where(p.c.at >= since)
    if until is not None:
        query = query.where(p.c.at < until)
    query = query.order_by(p.c.at.desc(), p.c.id.desc())
    if limit is not None:
        query = query.limit(max(limit, 0))
    rows = store.read(lambda conn: conn.execute(query).all())
    classes = get_version(store, model, version).signature.get("classes", [0, 1])
    info = {"classes": classes, "multiclass": is_multiclass(classes)}
    return _frame(list(reversed(rows)), info)


def _frame(rows: list[Any], info: dict[str, Any]) -> pd.DataFrame:
    kept, labels = [], []
    for row in rows:
        observed = observed_index(row.label, info)
        if observed is not None:
            kept.append(row)
            labels.append(observed)
    frame = pd.DataFrame.from_records([dict(row.record) for row in kept], index=range(len(kept)))
    frame[SCORE] = np.array([row.score for row in kept], dtype=float)
    frame[LABEL] = np.array(labels, dtype=np.int64)
    frame[AT] = pd.to_datetime([row.at for row in kept], utc=True)
    frame[LATENCY] = np.array([row.latency_ms for row in kept], dtype=float)
    return frame

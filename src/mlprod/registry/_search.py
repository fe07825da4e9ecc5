"""Finding runs: by model, user, status and date in SQL, then by metrics and params.

The cheap, indexed filters run in the database; the expressive ones (``--where``) run
over the matching records in Python with the safe evaluator from `_where`. The newest
`scan` runs that pass the SQL filters are considered, which bounds the cost of a query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mlprod._time import parse_since
from mlprod.errors import SpecError
from mlprod.registry._records import RunRecord
from mlprod.registry._runs import run_record
from mlprod.registry._where import matches, parse_where, sort_key
from mlprod.store import MetadataStore
from mlprod.store import schema as t

SCAN = 5000


def search_runs(
    store: MetadataStore,
    *,
    model: str | None = None,
    where: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    user: str | None = None,
    status: str | None = None,
    sort: str | None = None,
    limit: int = 50,
) -> list[RunRecord]:
    """Runs matching every filter given, sorted (default newest first), at most `limit`.

    `where` is a filter such as ``roc_auc > 0.85 and params.model == 'lightgbm'`` (see
    `mlprod.registry._where` for the fields); `sort` a field, ``-`` first for descending;
    runs missing the sort field come last. Bad filters raise `SpecError` naming the problem.

    Example::

        best = search_runs(store, model="churn", where="roc_auc > 0.85",
                           since="7d", sort="-roc_auc", limit=5)
    """
    tree = parse_where(where) if where and where.strip() else None
    key = sort_key(sort) if sort else None
    query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
    conditions: list[Any] = []
    if model is not None:
        conditions.append(t.runs.c.model == model)
    if user is not None:
        conditions.append(t.runs.c.user_name == user)
    if status is not None:
        conditions.append(t.runs.c.status == status)
    if since is not None:
        conditions.append(t.runs.c.started_at >= _moment("since", since))
    if until is not None:
        conditions.append(t.runs.c.started_at <= _moment("until", until))
    if conditions:
        query = query.where(*conditions)
    rows = store.read(lambda conn: conn.execute(query.limit(SCAN)).all())
    runs = [run_record(row) for row in rows]
    if tree is not None:
        runs = [run for run in runs if matches(tree, run, where or "")]
    if key is not None:
        descending, field = key
        present = [r for r in runs if _sortable(field.read(r))]
        missing = [r for r in runs if not _sortable(field.read(r))]
        present.sort(key=lambda r: field.read(r), reverse=descending)
        runs = present + missing
    return runs[: max(limit, 0)]


def _sortable(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _moment(option: str, value: str | datetime) -> datetime:
    try:
        return parse_since(value)
    except ValueError as exc:
        raise SpecError(f"--{option}: {exc}") from None

"""Alerts: one row per incident, open until its condition clears.

An alert is keyed by (model, kind, subject), e.g. ``churn / drift / monthly_charges``.
While it is open its key sits in a unique column, so every server and every `mlprod
monitor` that sees the same condition touches the same row instead of opening another:
one incident, one alert, however many processes watch. Closing frees the key, so the
next incident opens a new row.

Example::

    alert, opened = raise_alert(store, "churn", "drift", "monthly_charges",
                                message="PSI 0.41 > 0.2", details={"psi": 0.41})
    close_alerts(store, "churn", "drift", still_failing=set())
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod.registry import Record
from mlprod.store import Store, plain_json
from mlprod.store import schema as t

AlertKind = Literal["drift", "performance", "errors", "serving"]  # serving: will not load


class AlertRecord(Record):
    """One incident: what crossed which threshold, when it began and when it cleared."""

    id: int
    model: str
    version: int | None
    kind: str
    subject: str
    opened_at: datetime
    last_seen_at: datetime
    closed_at: datetime | None
    message: str
    details: dict[str, Any]

    @property
    def open(self) -> bool:
        return self.closed_at is None


def _record(row: Any) -> AlertRecord:
    data = dict(row._mapping)
    data.pop("open_key", None)
    return AlertRecord.model_validate(data)


def raise_alert(
    store: Store,
    model: str,
    kind: AlertKind,
    subject: str,
    *,
    message: str,
    details: dict[str, Any],
    version: int | None = None,
) -> tuple[AlertRecord, bool]:
    """Open an alert, or refresh the open one with the same key; (alert, opened just now)."""
    key = f"{model}/{kind}/{subject}"  # model names and kinds hold no "/"
    now = datetime.now(UTC)
    values = {
        "last_seen_at": now,
        "message": message,
        "details": plain_json(details),
        "version": version,
    }

    def work(conn: Connection) -> tuple[AlertRecord, bool]:
        query = sa.select(t.alerts).where(t.alerts.c.open_key == key).with_for_update()
        current = conn.execute(query).first()
        if current is not None:
            conn.execute(sa.update(t.alerts).where(t.alerts.c.id == current.id).values(values))
            return _record(
                conn.execute(sa.select(t.alerts).where(t.alerts.c.id == current.id)).one()
            ), False
        row = {
            "model": model,
            "kind": kind,
            "subject": subject,
            "open_key": key,
            "opened_at": now,
            "closed_at": None,
            **values,
        }
        new_id = conn.execute(sa.insert(t.alerts).values(row)).inserted_primary_key
        assert new_id is not None  # an INSERT always reports its key
        return _record(
            conn.execute(sa.select(t.alerts).where(t.alerts.c.id == new_id[0])).one()
        ), True

    return store.write(work, conflicts=True)  # a racer opened it: touch theirs


def close_alerts(
    store: Store, model: str, kind: AlertKind, *, still_failing: Collection[str]
) -> list[AlertRecord]:
    """Close `model`'s open alerts of `kind` whose subject is not in `still_failing`."""
    now = datetime.now(UTC)
    query = sa.select(t.alerts).where(
        t.alerts.c.model == model, t.alerts.c.kind == kind, t.alerts.c.closed_at.is_(None)
    )

    def work(conn: Connection) -> list[AlertRecord]:
        cleared = [
            row for row in conn.execute(query.with_for_update()) if row.subject not in still_failing
        ]
        for row in cleared:
            conn.execute(
                sa.update(t.alerts)
                .where(t.alerts.c.id == row.id)
                .values(closed_at=now, open_key=None)
            )
        ids = [row.id for row in cleared]
        if not ids:
            return []
        return [_record(r) for r in conn.execute(sa.select(t.alerts).where(t.alerts.c.id.in_(ids)))]

    return store.write(work)


def list_alerts(
    store: Store, model: str | None = None, *, open_only: bool = False, limit: int = 100
) -> list[AlertRecord]:
    """Alerts, newest first; `open_only` leaves out the ones that cleared."""
    query = sa.select(t.alerts).order_by(t.alerts.c.opened_at.desc(), t.alerts.c.id.desc())
    if model is not None:
        query = query.where(t.alerts.c.model == model)
    if open_only:
        query = query.where(t.alerts.c.closed_at.is_(None))
    rows = store.read(lambda conn: conn.execute(query.limit(max(limit, 0))).all())
    return [_record(row) for row in rows]

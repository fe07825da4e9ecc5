"""Live statistics per model, version and time window, merged into the store by addition.

Servers and batch jobs count what they score (traffic, predicted positives, calibrated
score sums, score and feature bins) in memory per window and merge it here every few
seconds; outcome matching adds the labelled half (confusion counts, scores by observed
class). Every value is a sum, so any number of replicas can merge into the same rows,
and a report reads a few rows per window whatever the traffic was.

Example::

    stats = LiveStats(bucket_seconds=60)
    stats.add("churn", 3, at, scores, threshold=0.41, binner=binner, records=records)
    merge_live_stats(store, stats.drain())
    read_window_stats(store, "churn", since=start)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mlprod._time import as_utc, parse_utc
from mlprod.monitoring._reference import (
    PREDICTED,
    SCORE,
    SCORE_BINS,
    Binner,
    add_score_histograms,
    score_histogram,
)
from mlprod.store import Store
from mlprod.store import schema as t
from mlprod.store.schema import UTCDateTime

if TYPE_CHECKING:
    import pandas as pd

WindowKey = tuple[str, int, datetime]  # model, version, window start
ADDITIVE_STATS = ("predictions", "predicted_positive", "est_tp", "est_positive", "score_hist")
LABELLED_STATS = ("labelled", "tp", "fp", "fn", "tn", "pos_hist", "neg_hist")
SCORE_HISTOGRAMS = ("score_hist", "pos_hist", "neg_hist")


def window_start(at: datetime, bucket_seconds: int) -> datetime:
    """The start of the bucket `at` falls in (aligned to the Unix epoch; naive means UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = int(at.timestamp()) // bucket_seconds * bucket_seconds
    return datetime.fromtimestamp(seconds, UTC)


def _zeros() -> list[int]:
    return [0] * SCORE_BINS


@dataclass
class WindowCounts:
    """What one window of one version saw: every field adds up across servers."""

    predictions: int = 0
    predicted_positive: int = 0
    est_tp: float = 0.0
    est_positive: float = 0.0
    score_hist: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS, np.int64))
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def add_features(self, counts: Mapping[str, np.ndarray]) -> None:
        for name, values in counts.items():
            current = self.features.get(name)
            self.features[name] = values.copy() if current is None else current + values


class LiveStats:
    """Counts scored records per (model, version, window) in memory, until drained.

    Thread-safe: the server's request path never calls it (a counter thread does), and
    `drain` hands the counts to whoever merges them into the store.
    """

    def __init__(self, bucket_seconds: int = 60) -> None:
        if bucket_seconds < 1:
            raise ValueError(f"bucket_seconds must be at least 1, got {bucket_seconds}")
        self.bucket_seconds = bucket_seconds
        self._windows: dict[WindowKey, WindowCounts] = {}
        self._lock = threading.Lock()

    def add(
        self,
        model: str,
        version: int,
        at: datetime,
        scores: np.ndarray,
        *,
        threshold: float,
        binner: Binner | None,
        records: Sequence[Mapping[str, Any]] | None = None,
        frame: pd.DataFrame | None = None,
        labels: Sequence[Any] | None = None,
    ) -> None:
        """Count one batch of scored records (raw `records` or a raw `frame`).

        `labels`: a multiclass version's predicted class per record (its `scores` are the
        top class's probability); counted as class shares under `PREDICTED`.
        """
        scores = np.asarray(scores, dtype=float)
        finite = np.isfinite(scores)
        positive = finite & (np.where(finite, scores, -np.inf) >= threshold)
        features: dict[str, np.ndarray] = {}
        calibrated = np.zeros(len(scores))
        if binner is not None:
            calibrated = np.where(finite, binner.calibrated(np.where(finite, scores, 0.0)), 0.0)
            if records is not None:
                features = binner.count_records(records)
            elif frame is not None:
                features = binner.count_frame(frame)
            features[SCORE] = binner.score_counts(scores)
            classes = None if labels is None else binner.class_counts(labels)
            if classes is not None:
                features[PREDICTED] = classes
        key = (model, int(version), window_start(at, self.bucket_seconds))
        with self._lock:
            counts = self._windows.setdefault(key, WindowCounts())
            counts.predictions += len(scores)
            counts.predicted_positive += int(positive.sum())
            counts.est_tp += float(calibrated[positive].sum())
            counts.est_positive += float(calibrated.sum())
            counts.score_hist += score_histogram(scores)
            counts.add_features(features)

    def drain(self) -> dict[WindowKey, WindowCounts]:
        """Everything counted since the last drain; the accumulator starts empty again."""
        with self._lock:
            windows, self._windows = self._windows, {}
        return windows

    def restore(self, windows: Mapping[WindowKey, WindowCounts]) -> None:
        """Put drained counts back (their merge failed); they join whatever came since."""
        with self._lock:
            for key, counts in windows.items():
                current = self._windows.setdefault(key, WindowCounts())
                current.predictions += counts.predictions
                current.predicted_positive += counts.predicted_positive
                current.est_tp += counts.est_tp
                current.est_positive += counts.est_positive
                current.score_hist += counts.score_hist
                current.add_features(counts.features)


# --- merging into the store


def empty_window_row(model: str, version: int, start: datetime) -> dict[str, Any]:
    """A window_stats row with every statistic at zero."""
    return {
        "model": model,
        "version": version,
        "window_start": start,
        "predictions": 0,
        "predicted_positive": 0,
        "est_tp": 0.0,
        "est_positive": 0.0,
        "score_hist": _zeros(),
        "labelled": 0,
        "tp": 0,
        "fp": 0,
        "fn": 0,
        "tn": 0,
        "pos_hist": _zeros(),
        "neg_hist": _zeros(),
    }


def _added(current: Any, extra: Any, name: str = "") -> Any:
    if name in SCORE_HISTOGRAMS:
        return [int(x) for x in add_score_histograms(current or [], extra)]
    if isinstance(extra, list | np.ndarray):
        base = list(current or [])
        addition = [int(x) for x in extra]
        width = max(len(base), len(addition))
        base += [0] * (width - len(base))
        return [a + (addition[i] if i < len(addition) else 0) for i, a in enumerate(base)]
    return current + extra


def merge_rows(
    conn: Connection,
    table: sa.Table,
    keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    empty: Any,
) -> None:
    """Add `rows` into `table` by key: existing rows grow, new rows start from `empty(key)`.

    Existing rows are read with a row lock (PostgreSQL) or under the writer lock
    (SQLite); two writers inserting the same new key collide on the primary key and
    the store retries the loser's whole transaction, which then finds the row.
    """
    if not rows:
        return
    models = sorted({row["model"] for row in rows})
    starts = [row["window_start"] for row in rows]
    query = (
        sa.select(table)
        .where(table.c.model.in_(models))
        .where(table.c.window_start.between(min(starts), max(starts)))
        .with_for_update()
    )
    existing = {
        tuple(row._mapping[k] for k in keys): dict(row._mapping) for row in conn.execute(query)
    }
    inserts = []
    for row in rows:
        key = tuple(row[k] for k in keys)
        current = existing.get(key)
        values = {k: v for k, v in row.items() if k not in keys}
        if current is None:
            base = empty(*key)
            inserts.append({**base, **{k: _added(base[k], v, k) for k, v in values.items()}})
            continue
        where = sa.and_(*(table.c[k] == current[k] for k in keys))
        update = {k: _added(current[k], v, k) for k, v in values.items()}
        conn.execute(sa.update(table).where(where).values(update))
    if inserts:
        conn.execute(sa.insert(table), inserts)


def merge_live_stats(store: Store, windows: Mapping[WindowKey, WindowCounts]) -> None:
    """Add drained `windows` into the store in one transaction."""
    stats, features = [], []
    for (model, version, start), counts in windows.items():
        stats.append(
            {
                "model": model,
                "version": version,
                "window_start": start,
                "predictions": counts.predictions,
                "predicted_positive": counts.predicted_positive,
                "est_tp": counts.est_tp,
                "est_positive": counts.est_positive,
                "score_hist": counts.score_hist,
            }
        )
        for name, values in counts.features.items():
            features.append(
                {
                    "model": model,
                    "version": version,
                    "feature": name,
                    "window_start": start,
                    "counts": values,
                    "total": int(values.sum()),
                }
            )

    def work(conn: Connection) -> None:
        merge_rows(
            conn, t.window_stats, ("model", "version", "window_start"), stats, empty_window_row
        )
        merge_rows(
            conn,
            t.feature_counts,
            ("model", "version", "feature", "window_start"),
            features,
            empty_feature_row,
        )

    store.write(work, conflicts=True)


def empty_feature_row(model: str, version: int, feature: str, start: datetime) -> dict[str, Any]:
    """A feature_counts row with no counts yet (they grow to their width as added)."""
    return {
        "model": model,
        "version": version,
        "feature": feature,
        "window_start": start,
        "counts": [],
        "total": 0,
    }


def merge_request_errors(store: Store, errors: Mapping[tuple[str, datetime, str], int]) -> None:
    """Add error counts per (model, window start, error code)."""
    rows = [
        {"model": m, "window_start": w, "code": c, "count": n} for (m, w, c), n in errors.items()
    ]

    def empty(model: str, start: datetime, code: str) -> dict[str, Any]:
        return {"model": model, "window_start": start, "code": code, "count": 0}

    store.write(
        lambda conn: merge_rows(
            conn, t.request_errors, ("model", "window_start", "code"), rows, empty
        ),
        conflicts=True,
    )


# --- reading


def _window_query(
    table: sa.Table,
    model: str,
    since: datetime | None,
    until: datetime | None,
    feature: str | None = None,
) -> Any:
    query = sa.select(table).where(table.c.model == model)
    if feature is not None:
        query = query.where(table.c.feature == feature)
    if since is not None:
        query = query.where(table.c.window_start >= since)
    if until is not None:
        query = query.where(table.c.window_start < until)
    return query.order_by(table.c.window_start)


def _read_windows(
    store: Store,
    table: sa.Table,
    model: str,
    since: datetime | None,
    until: datetime | None,
    columns: Sequence[str] | None = None,
    feature: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of a window table as dicts, decoded here rather than by SQLAlchemy.

    A year of hourly windows is over a hundred thousand feature rows: SQLAlchemy's
    per-row JSON and datetime processing cost seconds, so the columns are read as plain
    values, JSON is parsed with orjson and each distinct timestamp is parsed once.
    """
    chosen = [table.c[name] for name in columns] if columns else list(table.columns)
    plain = [
        sa.type_coerce(column, sa.Text)
        if isinstance(column.type, sa.JSON | UTCDateTime)
        else column
        for column in chosen
    ]
    query = _window_query(table, model, since, until, feature).with_only_columns(*plain)
    names = [column.name for column in chosen]
    decoders = {
        column.name: _json_value if isinstance(column.type, sa.JSON) else _utc_value
        for column in chosen
        if isinstance(column.type, sa.JSON | UTCDateTime)
    }

    def work(conn: Connection) -> list[dict[str, Any]]:
        rows = []
        for raw in conn.execute(query):
            row = dict(zip(names, raw, strict=True))
            for name, decode in decoders.items():
                row[name] = decode(row[name])
            rows.append(row)
        return rows

    return store.read(work)


def _json_value(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _utc_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value)
    return parse_utc(value) if isinstance(value, str) else value


def read_window_stats(
    store: Store, model: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """window_stats rows of `model` with since <= window_start < until, oldest first."""
    return _read_windows(store, t.window_stats, model, since, until)


def read_feature_counts(
    store: Store,
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
    feature: str | None = None,
) -> list[dict[str, Any]]:
    """feature_counts rows of `model` (the score's under ``__score__``), oldest first.

    `columns` limits what is read (a year of rows costs its decoding), `feature` reads
    one feature's (or pseudo-feature's) rows only.
    """
    return _read_windows(store, t.feature_counts, model, since, until, columns, feature)


def read_request_errors(
    store: Store, model: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """request_errors rows of `model`, oldest first."""
    query = _window_query(t.request_errors, model, since, until)
    return store.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])


def activity_marker(store: Store, *, recent: datetime) -> tuple[Any, ...]:
    """A value that changes whenever something a live page shows changes.

    Alias moves and route changes (audit), outcomes arriving or being matched, alerts
    opening or closing, and live counts merged into windows since `recent`. One query,
    cheap enough to poll twice a second.
    """
    w, o, a = t.window_stats, t.outcomes, t.alerts
    query = sa.select(
        sa.select(sa.func.max(t.audit.c.id)).scalar_subquery(),
        sa.select(sa.func.max(o.c.id)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(o).where(o.c.status == "pending").scalar_subquery(),
        sa.select(sa.func.max(a.c.id)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(a).where(a.c.closed_at.is_(None)).scalar_subquery(),
        sa.select(sa.func.sum(w.c.predictions)).where(w.c.window_start >= recent).scalar_subquery(),
        sa.select(sa.func.sum(w.c.labelled)).where(w.c.window_start >= recent).scalar_subquery(),
    )
    return tuple(store.read(lambda conn: conn.execute(query).one()))

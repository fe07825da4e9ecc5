"""Live statistics in the server: every scored record is counted, off the request path.

A request only appends its records and scores to a bounded queue. A thread counts them
in batches into the versions' reference bins (one bin lookup per field, amortised over
hundreds of records), merges the counts into the store every `flush_seconds`, and joins
pending outcomes to logged predictions. If the store is down the counts wait in memory
and merge later; if counting falls behind, records are skipped and counted, never
silently.

Example::

    counter = LiveCounter(store, bucket_seconds=60, flush_seconds=1.0)
    counter.start()
    counter.submit(model, records, scores)     # from the request path: an append
    counter.error("churn", "invalid_input")
    counter.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import exc as sa_exc

from mlprod._threads import lower_priority
from mlprod.errors import MlprodError
from mlprod.monitoring._live import LiveStats, merge_live_stats, merge_request_errors, window_start
from mlprod.monitoring._outcomes import match_outcomes
from mlprod.monitoring._reference import Binner
from mlprod.store import Store

log = logging.getLogger("mlprod.serving")

MAX_QUEUED = 1_000_000  # records waiting to be counted before new ones are skipped
COUNT_EVERY = 0.1  # seconds between counting passes: short passes, short pauses


class Counted(Protocol):
    """What the counter needs of a scoring version (a server's loaded version, for one)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def threshold(self) -> float: ...

    binner: Binner | None


@dataclass(frozen=True)
class _Batch:
    model: Counted
    records: Sequence[Any]
    scores: np.ndarray
    labels: Sequence[Any] | None  # a multiclass version's predicted classes
    at: float  # time.time() of the answer: cheaper than a datetime on the request path


class LiveCounter:
    """Counts scored records per (model, version, window) and merges them into the store."""

    def __init__(
        self,
        store: Store,
        *,
        bucket_seconds: int = 60,
        flush_seconds: float = 1.0,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.max_queued = max_queued
        self.stats = LiveStats(bucket_seconds)
        self._queue: deque[_Batch] = deque()
        self._queued = 0
        self._errors: Counter[tuple[str, datetime, str]] = Counter()
        self._lock = threading.Lock()
        self._counts = {"counted": 0, "skipped": 0, "merges": 0, "merge_failures": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the request path: appends only

    def submit(
        self,
        model: Counted,
        records: Sequence[Any],
        scores: Sequence[float | None],
        labels: Sequence[Any] | None = None,
    ) -> None:
        """Queue one version's scored records (None scores were not finite).

        Multiclass: `scores` are the top class's probability, `labels` the predicted classes.
        """
        with self._lock:
            if self._queued + len(records) > self.max_queued:
                self._counts["skipped"] += len(records)
                return
            self._queued += len(records)
        values = np.array([np.nan if s is None else s for s in scores], dtype=float)
        self._queue.append(_Batch(model, records, values, labels, time.time()))

    def error(self, model: str, code: str) -> None:
        """Count one request `model` answered with error `code`."""
        key = (model, window_start(datetime.now(UTC), self.stats.bucket_seconds), code)
        with self._lock:
            self._errors[key] += 1

    def stats_for_metrics(self) -> dict[str, int]:
        """Counters for /metrics: records counted, skipped, queued; merges and failures."""
        with self._lock:
            return {**self._counts, "queued": self._queued}

    # --- the counting thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlprod-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Count what is queued and merge it, for up to `timeout` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        lower_priority()
        next_flush = time.monotonic() + self.flush_seconds
        while True:
            stopping = self._stop.wait(COUNT_EVERY)
            self.count_queued()
            if stopping or time.monotonic() >= next_flush:
                self.flush()
                next_flush = time.monotonic() + self.flush_seconds
            if stopping:
                return

    def count_queued(self) -> None:
        """Count every queued batch, grouped by version so each binner sees many records."""
        groups: dict[int, list[_Batch]] = {}
        while self._queue:
            batch = self._queue.popleft()
            with self._lock:
                self._queued -= len(batch.records)
            groups.setdefault(id(batch.model), []).append(batch)
        for batches in groups.values():
            self._count(batches)

    def _count(self, batches: list[_Batch]) -> None:
        model = batches[0].model
        binner = model.binner
        bucket = self.stats.bucket_seconds
        by_window: dict[int, list[_Batch]] = {}
        for batch in batches:
            by_window.setdefault(int(batch.at // bucket), []).append(batch)
        for number, group in by_window.items():
            records = [record for batch in group for record in batch.records]
            scores = np.concatenate([batch.scores for batch in group])
            labels = None
            if all(batch.labels is not None for batch in group):
                labels = [label for batch in group for label in batch.labels or ()]
            self.stats.add(
                model.name,
                model.version,
                datetime.fromtimestamp(number * bucket, UTC),
                scores,
                threshold=model.threshold,
                binner=binner,
                records=records,
                labels=labels,
            )
            with self._lock:
                self._counts["counted"] += len(records)

    def flush(self) -> None:
        """Merge the counts into the store and match outcomes; keep them if the store is down."""
        windows = self.stats.drain()
        with self._lock:
            errors, self._errors = self._errors, Counter()
        failed = False
        try:
            if windows:
                merge_live_stats(self.store, windows)
        except (MlprodError, sa_exc.SQLAlchemyError) as exc:
            self.stats.restore(windows)
            failed = self._failed(exc)
        try:
            if errors:
                merge_request_errors(self.store, errors)
        except (MlprodError, sa_exc.SQLAlchemyError) as exc:
            with self._lock:
                self._errors.update(errors)
            failed = self._failed(exc)
        try:
            match_outcomes(self.store, bucket_seconds=self.stats.bucket_seconds)
        except (MlprodError, sa_exc.SQLAlchemyError) as exc:
            failed = self._failed(exc)
        if not failed:
            with self._lock:
                self._counts["merges"] += 1

    def _failed(self, exc: Exception) -> bool:
        with self._lock:
            self._counts["merge_failures"] += 1
            first = self._counts["merge_failures"] == 1
        if first or self._counts["merge_failures"] % 30 == 0:
            log.warning("live statistics wait in memory, the store is unreachable: %s", exc)
        return True

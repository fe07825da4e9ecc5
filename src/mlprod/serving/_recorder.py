"""After an answer: log the sampled predictions and score the shadows, off the hot path.

Logging is one append to the local spool per request, one entry holding all its records
and answers (the flusher moves them to the store later, see `_predlog`). Shadow versions
score the same records on one background thread fed by a bounded queue: the response
never waits for them, and when they fall behind the records they skip are counted and
reported, never dropped silently.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlprod._threads import lower_priority
from mlprod.errors import MlprodError, SpoolFullError
from mlprod.monitoring import LiveCounter
from mlprod.predlog import PredictionLog, prediction_entry
from mlprod.records import without_extras
from mlprod.serving._loaded import LoadedVersion
from mlprod.serving._pool import Served
from mlprod.serving._scoring import score_records

log = logging.getLogger("mlprod.serving")

SHADOW_QUEUE = 256  # requests waiting for their shadows; beyond it shadows skip and count


@dataclass(frozen=True)
class _Job:
    shadows: tuple[LoadedVersion, ...]
    records: list[Any]
    answered: list[str]
    at: datetime


class ShadowScorer:
    """Scores shadow versions on a background thread and logs what they would have said."""

    def __init__(
        self,
        log: PredictionLog,
        *,
        max_records: int,
        counter: LiveCounter | None = None,
        max_pending: int = SHADOW_QUEUE,
    ):
        self.log = log
        self.counter = counter
        self.max_records = max_records
        self._queue: queue.Queue[_Job | None] = queue.Queue(max_pending)
        self._counts = {"scored": 0, "skipped": 0, "failed": 0}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlprod-shadows", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Score what is queued for up to `timeout` seconds, then stop."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("shadow queue still full at shutdown; its records are not scored")
        self._thread.join(timeout)
        self._thread = None

    def submit(
        self, shadows: tuple[LoadedVersion, ...], records: list[Any], answered: list[str]
    ) -> None:
        """Queue one request's records for every shadow; never blocks."""
        try:
            self._queue.put_nowait(_Job(shadows, records, answered, datetime.now(UTC)))
        except queue.Full:
            self._count("skipped", len(records) * len(shadows))

    def stats(self) -> dict[str, int]:
        """Records scored by shadows, skipped because the queue was full, or failed."""
        with self._lock:
            return {**self._counts, "queued": self._queue.qsize()}

    def _count(self, key: str, amount: int) -> None:
        with self._lock:
            first = key != "scored" and self._counts[key] == 0
            self._counts[key] += amount
        if first:
            log.warning("shadow records %s (counted in /metrics as mlprod_shadows_%s)", key, key)

    def _loop(self) -> None:
        lower_priority()
        while (job := self._queue.get()) is not None:
            for model in job.shadows:
                self._score(model, job)

    def _score(self, model: LoadedVersion, job: _Job) -> None:
        started = time.perf_counter()
        try:
            content = score_records(model, job.records, self.max_records)
            latency_ms = (time.perf_counter() - started) * 1e3
            entry = prediction_entry(
                model.name,
                job.records,
                content["predictions"],
                at=job.at,
                latency_ms=latency_ms,
                entity=model.signature.get("entity"),
                shadow_of=job.answered,
            )
            self.log.submit([entry])
            if self.counter is not None:
                _submit_counts(self.counter, model, job.records, content["predictions"])
        except SpoolFullError:
            self._count("skipped", len(job.records))
            return
        except MlprodError as exc:  # e.g. a shadow whose signature refuses the records
            log.warning(
                "shadow %s@%s could not score a request: %s", model.name, model.version, exc
            )
            self._count("failed", len(job.records))
            return
        self._count("scored", len(job.records))


def _kept(target: LoadedVersion | Served) -> frozenset[str]:
    """The fields the log keeps: every routed version's inputs and context."""
    if isinstance(target, LoadedVersion):
        return target.contract.kept
    if len(target.routes) == 1:
        return target.routes[0].contract.kept
    return frozenset().union(*(model.contract.kept for model in target.routes))


class Recorder:
    """Logs each answered request's sampled predictions and hands its records to the shadows.

    `default_rate` is the share of predictions logged for models whose deployment does not
    say (``MLPROD_LOG_SAMPLE_RATE``); a deployment's own rate wins.
    """

    def __init__(
        self,
        log: PredictionLog,
        shadows: ShadowScorer,
        *,
        default_rate: float,
        counter: LiveCounter | None = None,
    ) -> None:
        self.log = log
        self.shadows = shadows
        self.default_rate = default_rate
        self.counter = counter

    def record(
        self,
        target: LoadedVersion | Served,
        records: list[Any],
        predictions: list[dict[str, Any]],
        latency_ms: float,
        body: bytes | None = None,
    ) -> None:
        """Count every record, spool the sampled rows; `SpoolFullError` when the spool sheds.

        `body` is the request's JSON body, which holds `records`: logged as it came when
        every record is kept and none carries a field the contract does not name.
        """
        if self.counter is not None:
            self._count(target, records, predictions)
        stripped = without_extras(records, _kept(target))
        if stripped is not None:
            records, body = stripped, None
        served = target if isinstance(target, Served) else None
        model = target.routes[0] if isinstance(target, Served) else target
        rate = served.log_sample_rate if served is not None else None
        rate = self.default_rate if rate is None else rate
        if rate < 1.0:
            kept = [i for i in range(len(records)) if random.random() < rate]
            records = [records[i] for i in kept]
            predictions = [predictions[i] for i in kept]
            body = None  # it holds every record, not the sample
        if not records:
            return
        entry = prediction_entry(
            model.name,
            records,
            predictions,
            at=datetime.now(UTC),
            latency_ms=latency_ms,
            entity=model.signature.get("entity"),
            body=body,
        )
        self.log.submit([entry])
        if served is not None and served.shadows:
            self.shadows.submit(served.shadows, records, [p["id"] for p in predictions])

    def _count(
        self, target: LoadedVersion | Served, records: list[Any], predictions: list[dict[str, Any]]
    ) -> None:
        """Hand every scored record to the live counter, grouped by the version that scored it."""
        assert self.counter is not None
        models = {m.version: m for m in target.routes} if isinstance(target, Served) else None
        if models is None or len(models) == 1:
            model = target if isinstance(target, LoadedVersion) else target.routes[0]
            _submit_counts(self.counter, model, records, predictions)
            return
        groups: dict[int, list[int]] = {}
        for index, prediction in enumerate(predictions):
            groups.setdefault(prediction["version"], []).append(index)
        for version, indices in groups.items():
            _submit_counts(
                self.counter,
                models[version],
                [records[i] for i in indices],
                [predictions[i] for i in indices],
            )


def _submit_counts(
    counter: LiveCounter,
    model: LoadedVersion,
    records: list[Any],
    predictions: list[dict[str, Any]],
) -> None:
    """Hand one version's scored records to the live counter, as it answered them.

    A multiclass version's scores are its top-class probabilities and its labels the
    predicted classes (both None where the answer was not finite), which the counter bins
    as class shares; a binary version's labels follow from its scores and threshold.
    """
    scores = [p["score"] for p in predictions]
    if model.multiclass:
        counter.submit(model, records, scores, [p["label"] for p in predictions])
    else:
        counter.submit(model, records, scores)

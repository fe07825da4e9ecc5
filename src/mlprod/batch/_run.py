"""`score`: one batch job, from a source to a destination, resumable by its job id.

The job, chunk by chunk (chunk *k* is always the same rows of the source):

1. read the chunk (a reader thread keeps one chunk ahead),
2. score it on every core (`BatchScorer`),
3. in one store transaction: its rows into the batch prediction log (narrow rows in one
   bulk insert, so outcomes join them), its counts into monitoring, and the job's
   ``counted_chunks`` (so a resumed run never counts a chunk twice),
4. stage it at the destination (a writer thread, one chunk behind).

Then the staged rows are published at once. A run killed anywhere and started again with
the same job id skips what is staged and writes no row twice; a finished job run again
does nothing and says so.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from mlprod.batch._jobs import (
    InTransaction,
    JobRecord,
    check_job_id,
    get_job,
    insert_job,
    job_key,
    same_job,
    set_job,
    update_job,
)
from mlprod.batch._output import logged_answers, output_rows, output_schema
from mlprod.batch._progress import JobProgress
from mlprod.batch._result import BatchResult
from mlprod.batch._scorer import BatchScorer
from mlprod.batch._sinks import Sink, open_sink
from mlprod.batch._sources import Source, open_source
from mlprod.batch._sql import SqlQuery, SqlTable
from mlprod.bundle import Model
from mlprod.errors import DataError
from mlprod.monitoring import Binner, LiveStats, merge_live_stats
from mlprod.predlog import insert_batch_predictions
from mlprod.settings import Settings
from mlprod.store import MetadataStore, Store

CHUNK_ROWS = 50_000  # rows in flight bound the peak; halving from 100k cost about 3%
Engine = Literal["local", "spark"]


@dataclass
class _Job:
    """Everything one run of a job holds while it runs."""

    model: Model
    store: MetadataStore
    record: JobRecord
    source: Source
    sink: Sink
    schema: pa.Schema
    key: str
    log: bool
    stats: LiveStats | None
    binner: Binner | None
    timings: dict[str, float] = field(default_factory=dict)

    def clock(self, name: str, started: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started


def score(
    model: Model,
    source: str | Path | SqlQuery,
    destination: str | Path | SqlTable,
    *,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
    engine: Engine = "local",
    job_id: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    keep: Sequence[str] = (),
    log: bool = True,
    threads: int | None = None,
    master: str | None = None,
    progress: bool = False,
) -> BatchResult:
    """Score `source` into `destination` with `model` as one resumable job.

    `source` is a CSV or Parquet file, a folder or glob of Parquet files, or a `SqlQuery`;
    `destination` a ``.parquet`` or ``.csv`` file, a folder (Parquet parts) or a
    `SqlTable` (created if absent, appended otherwise). Each row gets a prediction id,
    model, version, score, label and scored_at, plus the signature's entity and time
    columns and the `keep` columns (``["*"]``: every input column); a multiclass version's
    rows also get ``proba_<class>`` per class, and its score is the label's probability.
    With `log`, rows go to the prediction log (outcomes join them by id or entity and
    time) and, when ``settings.monitor``, into monitoring. The same `job_id` resumes a
    killed job, and does nothing for a finished one. `engine="spark"` runs the job on
    Spark (`master`).

    Example::

        model = mlprod.load("churn@production")
        result = score(model, "new/*.parquet", SqlTable(url, "churn_scores"), job_id="nightly")
        result.rows, result.timings
    """
    settings = settings or Settings()
    opened = store is None
    meta: MetadataStore = Store.from_settings(settings) if store is None else store
    job_id = check_job_id(job_id) if job_id else _new_job_id(model)
    if chunk_rows < 1:
        raise DataError(f"chunk_rows must be at least 1, got {chunk_rows}")
    try:
        if engine == "spark":
            from mlprod.batch._spark import score_on_spark

            return score_on_spark(
                model, source, destination, meta, settings, job_id=job_id, keep=keep,
                master=master, log=log, progress=progress,
            )  # fmt: skip
        return _score_local(
            model, source, destination, meta, settings, job_id, chunk_rows, keep, log,
            threads, progress,
        )  # fmt: skip
    finally:
        if opened:
            meta.close()


def _new_job_id(model: Model) -> str:
    return f"{model.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _score_local(
    model: Model,
    source: str | Path | SqlQuery,
    destination: str | Path | SqlTable,
    meta: MetadataStore,
    settings: Settings,
    job_id: str,
    chunk_rows: int,
    keep: Sequence[str],
    log: bool,
    threads: int | None,
    progress: bool,
) -> BatchResult:
    started = time.perf_counter()
    with contextlib.ExitStack() as opened:
        reader = open_source(source)
        opened.callback(reader.close)
        schema = output_schema(model, reader.schema, keep)  # missing columns fail here
        key = job_key(job_id)
        sink = open_sink(destination, key)
        opened.callback(sink.close)
        earlier = get_job(meta, job_id)
        if earlier is not None:
            same_job(earlier, _expected(model, reader, sink, "local"))
            if earlier.status == "done":
                return _result(earlier, model, sink, already_done=True)
        sink.check(schema)  # before the job is recorded: a refused output leaves no trace
        record = _job_record(meta, model, job_id, reader, sink, chunk_rows, settings, "local")
        monitor = log and settings.monitor
        reference = model.reference if monitor else None
        job = _Job(
            model=model,
            store=meta,
            record=record,
            source=reader,
            sink=sink,
            schema=schema,
            key=key,
            log=log,
            stats=LiveStats(settings.monitor_bucket) if monitor else None,
            binner=Binner(reference) if reference is not None else None,
        )
        try:
            if record.status == "publishing" and not sink.staging_exists():
                # the last run published, then died before saying so
                resumed, notes = record.rows, list[str]()
            else:
                resumed = sink.staged_rows()
                rows, notes = _run_chunks(job, resumed, threads, settings, progress)
                _publish(job, rows)
        except BaseException as exc:
            set_job(meta, job_id, status="failed", error=str(exc) or type(exc).__name__)
            raise
        job.timings["total"] = time.perf_counter() - started
        set_job(
            meta,
            job_id,
            status="done",
            error=None,
            finished_at=datetime.now(UTC),
            timings=job.timings,
        )
        done = get_job(meta, job_id)
        assert done is not None
        result = _result(done, model, sink, already_done=False)
        result.resumed_after = resumed
        result.timings = job.timings
        result.notes = notes
        return result


def _job_record(
    meta: MetadataStore,
    model: Model,
    job_id: str,
    reader: Source,
    sink: Sink,
    chunk_rows: int,
    settings: Settings,
    engine: str,
) -> JobRecord:
    """The job's row: created for a new job, checked against this run for an old one."""
    expected = _expected(model, reader, sink, engine)
    record = get_job(meta, job_id)
    if record is None:
        record = JobRecord(
            id=job_id,
            chunk_rows=chunk_rows,
            scored_at=datetime.now(UTC),
            user_name=settings.user,
            **expected,
        )
        insert_job(meta, record)
        return record
    same_job(record, expected)
    if record.status != "done":
        status = "running" if record.status != "publishing" else "publishing"
        set_job(meta, job_id, status=status, key=record.key)  # a job begun before 0009 has none
    return record


def _expected(model: Model, reader: Source, sink: Sink, engine: str) -> dict[str, Any]:
    """What a job's row must say for this run to continue it."""
    return {
        "model": model.name,
        "version": int(model.version or 0),
        "engine": engine,
        "source": reader.describe(),
        "destination": sink.describe(),
    }


def _run_chunks(
    job: _Job, resumed: int, threads: int | None, settings: Settings, progress: bool
) -> tuple[int, list[str]]:
    """Score and stage every chunk after the `resumed` rows: (the job's rows, scorer notes)."""
    chunk_rows = job.record.chunk_rows
    if resumed % chunk_rows:  # only the last chunk is short: everything is staged already
        return resumed, []
    expect_rows = job.source.rows
    scorer = BatchScorer(
        job.model,
        threads=threads,
        compiled=settings.compiled_dir() if settings.compile_trees else None,
        compile_now=bool(expect_rows and expect_rows - resumed >= 1_000_000),
    )
    title = f"{job.model.name}@{job.model.version}"
    counter = ThreadPoolExecutor(1, thread_name_prefix="mlprod-batch-log")
    writer = ThreadPoolExecutor(1, thread_name_prefix="mlprod-batch-write")
    pending: Future[None] | None = None
    index, rows = resumed // chunk_rows, resumed
    try:
        with JobProgress(title, total=expect_rows, done=resumed, enabled=progress) as bar:
            for batch in _prefetched(job, resumed, chunk_rows):
                table, scores = _score_chunk(job, scorer, batch, rows)
                counted = None
                if index >= job.record.counted_chunks:  # a resumed chunk is counted once
                    counted = counter.submit(_count, job, batch, table, scores, index)
                if pending is not None:
                    pending.result()  # one chunk in flight: memory stays flat
                pending = writer.submit(_stage, job, index, table, counted)
                rows += batch.num_rows
                index += 1
                bar.advance(batch.num_rows)
            if pending is not None:
                pending.result()
    finally:
        writer.shutdown(wait=True)
        counter.shutdown(wait=True)
        scorer.close()
    if rows == 0:
        job.sink.discard()
        raise DataError("the input has no rows to score; nothing was written")
    return rows, [scorer.engine, *scorer.notes]


def _prefetched(job: _Job, skip: int, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The source's chunks, read one ahead on a thread of their own."""
    chunks: queue.Queue[Any] = queue.Queue(maxsize=1)
    done = object()
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in job.source.batches(skip, chunk_rows):
                while not stop.is_set():
                    try:
                        chunks.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            chunks.put(done)
        except BaseException as exc:
            chunks.put(exc)

    thread = threading.Thread(target=read, name="mlprod-batch-read", daemon=True)
    thread.start()
    try:
        while True:
            started = time.perf_counter()
            item = chunks.get()
            job.clock("read_wait", started)
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _score_chunk(
    job: _Job, scorer: BatchScorer, batch: pa.RecordBatch, start: int
) -> tuple[pa.Table, np.ndarray]:
    started = time.perf_counter()
    scores = scorer.score(batch)
    job.clock("score", started)
    started = time.perf_counter()
    table = output_rows(
        job.model, job.schema, batch, scores, job_key=job.key, start=start,
        scored_at=job.record.scored_at,
    )  # fmt: skip
    job.clock("output", started)
    return table, scores


def _count(
    job: _Job, batch: pa.RecordBatch, table: pa.Table, scores: np.ndarray, index: int
) -> None:
    """The chunk's log rows, monitoring counts and the job's progress, in one transaction.

    Runs on a thread of its own, beside the scoring of the next chunk; the chunk is staged
    only after this commits, so a staged chunk is always a counted one. A multiclass
    chunk is logged and counted as the server does it: its top-class probabilities as
    scores, its predicted classes as labels.
    """
    started = time.perf_counter()
    labels = None
    if scores.ndim == 2:
        scores, labels = logged_answers(table, multiclass=True)
    if job.stats is not None:
        frame = batch.to_pandas() if job.binner is not None else None
        job.stats.add(
            job.model.name, int(job.model.version or 0), job.record.scored_at, scores,
            threshold=job.model.threshold, binner=job.binner, frame=frame,
            labels=None if labels is None else labels.to_pylist(),
        )  # fmt: skip
    windows = job.stats.drain() if job.stats is not None else {}
    entity = job.model.signature.get("entity")
    keys = table.column(entity) if entity and entity in table.column_names else None
    start = index * job.record.chunk_rows

    def work(conn: Any) -> None:
        inside = InTransaction(job.store, conn)
        if job.log:
            insert_batch_predictions(
                inside, job=job.key, seqs=np.arange(start, start + len(scores)),
                scores=scores, entities=keys, labels=labels,
            )  # fmt: skip
        if windows:
            merge_live_stats(inside.as_store(), windows)
        update_job(conn, job.record.id, counted_chunks=index + 1)

    job.store.write(work, conflicts=True)
    job.clock("log", started)


def _stage(job: _Job, index: int, table: pa.Table, counted: Future[None] | None) -> None:
    if counted is not None:
        counted.result()  # logged and counted first: a resumed job never counts it again
    started = time.perf_counter()
    job.sink.write(index, table)
    job.clock("write", started)


def _publish(job: _Job, rows: int) -> None:
    started = time.perf_counter()
    set_job(job.store, job.record.id, status="publishing", rows=rows)
    job.sink.publish()
    job.clock("publish", started)


def _result(record: JobRecord, model: Model, sink: Sink, *, already_done: bool) -> BatchResult:
    return BatchResult(
        job_id=record.id,
        model=record.model,
        version=record.version,
        engine=record.engine,
        rows=record.rows,
        output=sink.describe(),
        status=record.status,
        already_done=already_done,
        timings=dict(record.timings),
    )

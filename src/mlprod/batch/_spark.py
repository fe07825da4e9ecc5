"""The Spark engine: the same bundle, the same scoring code, on every executor.

The driver ships the bundle *folder* (``SparkContext.addFile``) and passes only plain
values to the executors: the folder's name, the sha256 of its manifest, the job key.
Each Python worker opens the bundle once, checks the manifest against the driver's
hash and every file against the manifest (`Model.open`), and keeps the scorer for the
partitions that follow; nothing is ever unpickled. Partitions go through `mapInPandas`
into the same `BatchScorer` and `output_rows` as the local engine, so both engines give
the same scores and the same kind of prediction ids (the partition number in the high
bits).

Resumable like the local engine: each task writes its partition whole as one Parquet
part in the job's staging folder (a temporary name renamed into place), and a task whose
part is already there skips its partition. So a job killed anywhere and run again with
the same id scores only the partitions it had not finished, and a retried task rewrites
the same part. The driver then records every part's rows into the batch prediction log
and monitoring (one transaction per part, counted in the job's row, read in slices so
memory stays bounded), and publishes: the staging folder renamed into place, or, for a
table, the parts appended over JDBC to a staging table that one transaction moves into
the target.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlprod.batch._jobs import (
    InTransaction,
    JobRecord,
    get_job,
    insert_job,
    job_key,
    same_job,
    set_job,
    update_job,
)
from mlprod.batch._output import logged_answers, output_rows, output_schema
from mlprod.batch._result import BatchResult
from mlprod.batch._scorer import BatchScorer
from mlprod.batch._sinks import TableSink
from mlprod.batch._sources import FileSource, open_source
from mlprod.batch._sql import SqlQuery, SqlTable
from mlprod.bundle import Model
from mlprod.data import jdbc_options, spark_session
from mlprod.errors import ConflictError, DataError, IntegrityError
from mlprod.monitoring import Binner, LiveStats, merge_live_stats
from mlprod.predlog import insert_batch_predictions
from mlprod.settings import Settings
from mlprod.store import MetadataStore

PARTITION_BITS = 40  # prediction ids: partition << 40 | row within the partition
RECORD_ROWS = 100_000  # rows of a part read at a time when the driver records them
_DONE = pa.schema([("partition", pa.int32()), ("rows", pa.int64())])

# One scorer per bundle hash per Python worker: a worker process runs many partitions, and
# opening a bundle (hashing, loading, checking the encoder) is done once, not per partition.
_SCORERS: dict[str, tuple[Model, BatchScorer]] = {}


def score_on_spark(
    model: Model,
    source: str | Path | SqlQuery,
    destination: str | Path | SqlTable,
    store: MetadataStore,
    settings: Settings,
    *,
    job_id: str,
    keep: Sequence[str],
    master: str | None,
    log: bool,
    progress: bool,
) -> BatchResult:
    """Run one batch job on Spark (see `score`)."""
    started = time.perf_counter()
    spark = spark_session(master, app=f"mlprod-score-{model.name}")
    frame, arrow_in, described = _read(spark, source)
    schema = output_schema(model, arrow_in, keep)
    key = job_key(job_id)
    target = _Target(destination, key, schema, settings)
    partitions = int(frame.rdd.getNumPartitions())
    record = _record(store, model, job_id, described, target, settings, partitions)
    if record.status == "done":
        target.close()
        return BatchResult(
            job_id, record.model, record.version, "spark", record.rows, target.describe(),
            already_done=True, timings=dict(record.timings),
        )  # fmt: skip
    loads = spark.sparkContext.accumulator(0)
    resumed = 0
    try:
        if record.status != "publishing":
            resumed = target.staged_rows()
            _score_parts(spark, frame, model, schema, key, record.scored_at, loads, target.stage)
            rows = target.staged_rows()
            if rows == 0:
                target.discard()
                raise DataError("the input has no rows to score; nothing was written")
            if log:
                _record_predictions(store, model, record, target, settings)
            target.load(spark)
            set_job(store, job_id, status="publishing", rows=rows)
        target.publish()
    except BaseException as exc:
        set_job(store, job_id, status="failed", error=str(exc) or type(exc).__name__)
        raise
    finally:
        target.close()
    timings = {"total": time.perf_counter() - started}
    set_job(store, job_id, status="done", finished_at=datetime.now(UTC), timings=timings)
    done = get_job(store, job_id)
    assert done is not None
    note = f"bundle opened {loads.value} time(s) for {partitions} partition(s)"
    return BatchResult(
        job_id, model.name, int(model.version or 0), "spark", done.rows, target.describe(),
        resumed_after=resumed, timings=timings, notes=[note],
    )  # fmt: skip


def _read(spark: Any, source: str | Path | SqlQuery) -> tuple[Any, pa.Schema, dict[str, Any]]:
    """The source as a Spark DataFrame, its Arrow schema, and its description."""
    from pyspark.sql.pandas.types import to_arrow_schema

    if isinstance(source, SqlQuery):
        options = jdbc_options(source.url)
        frame = spark.read.format("jdbc").options(**options).option("query", source.query).load()
        described: dict[str, Any] = {"kind": "sql", "query": source.query, "url": options["url"]}
    else:
        files = open_source(source)
        if not isinstance(files, FileSource) or files.csv:
            raise DataError("the Spark engine reads Parquet files or SQL (--input-sql)")
        frame = spark.read.parquet(*[str(p.resolve()) for p in files.paths])
        described = files.describe()
    return frame, to_arrow_schema(frame.schema), described


def _record(
    store: MetadataStore,
    model: Model,
    job_id: str,
    source: dict[str, Any],
    target: _Target,
    settings: Settings,
    partitions: int,
) -> JobRecord:
    """The job's row; a resumed job must cut its input into the same partitions."""
    expected: dict[str, Any] = {
        "model": model.name,
        "version": int(model.version or 0),
        "engine": "spark",
        "source": source,
        "destination": target.describe(),
    }
    record = get_job(store, job_id)
    if record is not None:
        same_job(record, expected)
        if record.status == "done":
            return record
        if record.chunk_rows != partitions:
            raise ConflictError(
                f"batch job {job_id!r} read its input as {record.chunk_rows} Spark partitions, "
                f"now {partitions}: its staged parts would not line up. Run it with the same "
                "Spark settings, or give a new --job-id"
            )
        if record.status != "publishing":
            set_job(store, job_id, status="running", key=record.key)
        return record
    target.check()
    record = JobRecord(  # a Spark job's chunks are its input partitions
        id=job_id, chunk_rows=partitions, scored_at=datetime.now(UTC), user_name=settings.user,
        **expected,
    )  # fmt: skip
    insert_job(store, record)
    return record


def _score_parts(
    spark: Any,
    frame: Any,
    model: Model,
    schema: pa.Schema,
    key: str,
    scored_at: datetime,
    loads: Any,
    stage: Path,
) -> None:
    """Score every partition whose part is not staged yet, each into a part of its own."""
    from pyspark.sql.pandas.types import from_arrow_schema

    stage.mkdir(parents=True, exist_ok=True)
    spark.sparkContext.addFile(str(model.folder), recursive=True)
    digest = hashlib.sha256((model.folder / "manifest.json").read_bytes()).hexdigest()
    work = functools.partial(
        _score_partition,
        bundle=model.folder.name,
        digest=digest,
        version=int(model.version or 0),
        schema=schema,
        key=key,
        scored_at=scored_at,
        loads=loads,
        stage=str(stage),
    )
    frame.mapInPandas(work, from_arrow_schema(_DONE)).collect()


def part_path(stage: Path, partition: int) -> Path:
    """Where partition `partition`'s scored rows are staged."""
    return stage / f"part-{partition:06d}.parquet"


def _score_partition(
    frames: Iterator[pd.DataFrame],
    *,
    bundle: str,
    digest: str,
    version: int,
    schema: pa.Schema,
    key: str,
    scored_at: datetime,
    loads: Any,
    stage: str,
) -> Iterator[pd.DataFrame]:
    """Runs on an executor: the partition scored into its part, unless the part is there."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    final = part_path(Path(stage), partition)
    if final.exists():  # staged by an earlier run of the job: not scored again
        for _ in frames:
            pass
        return
    model, scorer = _scorer(bundle, digest, version, loads)
    offset = start = partition << PARTITION_BITS
    partial = final.with_name(f"{final.name}.{os.getpid()}.tmp")
    with pq.ParquetWriter(partial, schema) as writer:
        for frame in frames:
            batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
            scores = scorer.score(batch)
            writer.write_table(
                output_rows(
                    model, schema, batch, scores, job_key=key, start=offset, scored_at=scored_at
                )
            )
            offset += batch.num_rows
    os.replace(partial, final)  # the part appears whole, or not at all
    yield pd.DataFrame({"partition": [partition], "rows": [offset - start]})


def _scorer(bundle: str, digest: str, version: int, loads: Any) -> tuple[Model, BatchScorer]:
    """The worker's scorer for the bundle with manifest hash `digest`, opened on first use."""
    found = _SCORERS.get(digest)
    if found is not None:
        return found
    from pyspark import SparkFiles

    folder = Path(SparkFiles.get(bundle))
    shipped = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    if shipped != digest:
        raise IntegrityError(
            f"the bundle that reached this executor ({shipped[:12]}...) is not the one the "
            f"driver sent ({digest[:12]}...); refusing to score with it"
        )
    model = Model.open(folder)  # every file re-hashed against the manifest
    model.version = version
    scorer = BatchScorer(model, threads=1)  # Spark runs one task per core already
    loads.add(1)
    _SCORERS[digest] = (model, scorer)
    return model, scorer


def _record_predictions(
    store: MetadataStore, model: Model, record: JobRecord, target: _Target, settings: Settings
) -> None:
    """Each staged part into the batch prediction log and monitoring, once.

    One transaction per part moves its rows, its counts and the job's ``counted_chunks``
    together, so a job killed here and run again goes on with the next part. Scores come
    from the staged output, so monitoring counts scores and predictions, not input features;
    a multiclass version's top-class probabilities and predicted classes, as the server's.
    """
    parts = target.parts()
    entity = model.signature.get("entity")
    binner = Binner(model.reference) if settings.monitor and model.reference is not None else None
    version = int(model.version or 0)
    for index, (partition, path) in enumerate(parts):
        if index < record.counted_chunks:
            continue
        stats = LiveStats(settings.monitor_bucket) if settings.monitor else None

        def work(conn: Any, partition: int = partition, path: Path = path, index: int = index,
                 stats: LiveStats | None = stats) -> None:  # fmt: skip
            inside = InTransaction(store, conn)
            seq = partition << PARTITION_BITS
            columns = ["score", *(["label"] if model.multiclass else [])]
            columns += [entity] if entity else []
            for batch in pq.ParquetFile(path).iter_batches(RECORD_ROWS, columns=columns):
                scores, labels = logged_answers(batch, model.multiclass)
                insert_batch_predictions(
                    inside, job=target.key, seqs=np.arange(seq, seq + len(scores)),
                    scores=scores, entities=batch.column(entity) if entity else None,
                    labels=labels,
                )  # fmt: skip
                seq += len(scores)
                if stats is not None:
                    stats.add(
                        model.name, version, record.scored_at, scores,
                        threshold=model.threshold, binner=binner,
                        labels=None if labels is None else labels.to_pylist(),
                    )  # fmt: skip
            if stats is not None:
                merge_live_stats(inside.as_store(), stats.drain())
            update_job(conn, record.id, counted_chunks=index + 1)

        store.write(work, conflicts=True)


class _Target:
    """Where the Spark job writes: a staged Parquet folder, or a staging table over JDBC."""

    def __init__(
        self,
        destination: str | Path | SqlTable,
        key: str,
        schema: pa.Schema,
        settings: Settings,
    ) -> None:
        self.destination = destination
        self.schema = schema
        self.key = key
        self.table: TableSink | None = None
        if isinstance(destination, SqlTable):
            self.table = TableSink(destination, key)
            self.table.schema = schema
            # the executors write parts here: on a cluster, a folder they all share
            self.stage = settings.spool_dir().parent / "batch" / f"spark-{key}"
            return
        self.path = Path(destination)
        if self.path.suffix.lower() == ".csv":
            raise DataError("the Spark engine writes Parquet (a .parquet name or a folder) or SQL")
        self.stage = self.path.parent / f".{self.path.name}.mlprod-{key}"

    def check(self) -> None:
        """Refuse an output that cannot take the rows, before anything is written."""
        if self.table is not None:
            self.table.check(self.schema)
            return
        if self.path.exists() and (self.path.is_file() or any(self.path.iterdir())):
            raise DataError(
                f"output {str(self.path)!r} exists; the Spark engine writes a new folder of parts"
            )

    def close(self) -> None:
        if self.table is not None:
            self.table.close()

    def describe(self) -> dict[str, Any]:
        if self.table is not None:
            return self.table.describe()
        return {"kind": "folder", "path": str(self.path.resolve())}

    def parts(self) -> list[tuple[int, Path]]:
        """The staged parts, by partition number."""
        found = sorted(self.stage.glob("part-*.parquet")) if self.stage.is_dir() else []
        return [(int(p.name[5:11]), p) for p in found]

    def staged_rows(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for _, p in self.parts())

    def discard(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    def load(self, spark: Any) -> None:
        """A table's staged parts into its staging table over JDBC (afresh on every run)."""
        for leftover in self.stage.glob("*.tmp"):  # a killed or retried task's partial part
            leftover.unlink(missing_ok=True)
        if self.table is None:
            return
        self.table.discard()
        self.table.write(0, pa.Table.from_batches([], schema=self.schema))
        options = jdbc_options(self.table.target.url)
        staged = spark.read.schema(_spark_schema(self.schema)).parquet(str(self.stage))
        staged.write.format("jdbc").options(**options).option(
            "dbtable", self.table.stage_name
        ).mode("append").save()

    def publish(self) -> None:
        """Every staged row visible at once; a job that died after publishing does nothing."""
        if self.table is not None:
            if self.table.staging_exists():
                self.table.publish()
            self.discard()
            return
        if not self.stage.exists():
            return  # published by the run that died before saying so
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            self.path.rmdir()
        os.replace(self.stage, self.path)


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)

"""The Spark engine: the same bundle, the same scoring code, on every executor.

The driver ships the bundle *folder* (``SparkContext.addFile``) and passes only plain
values to the executors: the folder's name, the sha256 of its manifest, the job key.
Each Python worker opens the bundle once, checks the manifest against the driver's
hash and every file against the manifest (`Model.open`), and keeps the scorer for the
partitions that follow; nothing is ever unpickled. Partitions go through `mapInPandas`
into the same `BatchScorer` and `output_rows` as the local engine, so both engines give
the same scores and the same kind of prediction ids (the partition number in the high
bits).

Output is staged like the local engine's (a hidden folder renamed into place, or a
staging table appended to the target and dropped in one transaction) and the job row in
the store makes a finished job a no-op. A killed Spark job starts over on its next run;
Spark itself retries lost tasks.
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

import pandas as pd
import pyarrow as pa

from mlprod.batch._jobs import JobRecord, get_job, insert_job, job_key, same_job, set_job
from mlprod.batch._output import output_rows, output_schema
from mlprod.batch._result import BatchResult
from mlprod.batch._scorer import BatchScorer
from mlprod.batch._sinks import TableSink
from mlprod.batch._sources import FileSource, open_source
from mlprod.batch._sql import SqlQuery, SqlTable
from mlprod.bundle import Model
from mlprod.data import jdbc_options, spark_session
from mlprod.errors import DataError, IntegrityError
from mlprod.settings import Settings
from mlprod.store import MetadataStore

PARTITION_BITS = 40  # prediction ids: partition << 40 | row within the partition

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
    target = _Target(destination, key, schema)
    record = _record(store, model, job_id, described, target, settings)
    if record.status == "done":
        target.close()
        return BatchResult(
            job_id, record.model, record.version, "spark", record.rows, target.describe(),
            already_done=True, timings=dict(record.timings),
        )  # fmt: skip
    try:
        loads = spark.sparkContext.accumulator(0)
        scored = _scored(spark, frame, model, schema, key, record.scored_at, loads)
        rows = target.write(scored)
        set_job(store, job_id, status="publishing", rows=rows)
        target.publish()
    except BaseException as exc:
        set_job(store, job_id, status="failed", error=str(exc) or type(exc).__name__)
        raise
    finally:
        target.close()
    timings = {"total": time.perf_counter() - started}
    set_job(store, job_id, status="done", finished_at=datetime.now(UTC), timings=timings)
    partitions = frame.rdd.getNumPartitions()
    note = f"bundle opened {loads.value} time(s) for {partitions} partition(s)"
    return BatchResult(
        job_id, model.name, int(model.version or 0), "spark", rows, target.describe(),
        timings=timings, notes=[note],
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
) -> JobRecord:
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
    target.check()
    if record is None:
        record = JobRecord(
            id=job_id, chunk_rows=0, scored_at=datetime.now(UTC), user_name=settings.user,
            **expected,
        )  # fmt: skip
        insert_job(store, record)
    return record


def _scored(
    spark: Any,
    frame: Any,
    model: Model,
    schema: pa.Schema,
    key: str,
    scored_at: datetime,
    loads: Any,
) -> Any:
    """`frame` scored by `mapInPandas`, the bundle opened once per Python worker."""
    from pyspark.sql.pandas.types import from_arrow_schema

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
    )
    return frame.mapInPandas(work, from_arrow_schema(schema))


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
) -> Iterator[pd.DataFrame]:
    """Runs on an executor: score each Arrow batch Spark hands over, as the local engine does."""
    from pyspark import TaskContext

    model, scorer = _scorer(bundle, digest, version, loads)
    context = TaskContext.get()
    offset = (context.partitionId() if context is not None else 0) << PARTITION_BITS
    for frame in frames:
        batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
        scores = scorer.score(batch)
        rows = output_rows(
            model, schema, batch, scores, job_key=key, start=offset, scored_at=scored_at
        )
        offset += batch.num_rows
        yield rows.to_pandas()


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


class _Target:
    """Where the Spark job writes: a staged Parquet folder, or a staging table over JDBC."""

    def __init__(self, destination: str | Path | SqlTable, key: str, schema: pa.Schema) -> None:
        self.destination = destination
        self.schema = schema
        self.table: TableSink | None = None
        if isinstance(destination, SqlTable):
            self.table = TableSink(destination, key)
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

    def write(self, scored: Any) -> int:
        """Write every scored row to the staging; returns how many."""
        scored = scored.cache()
        rows = int(scored.count())
        if rows == 0:
            raise DataError("the input has no rows to score; nothing was written")
        if self.table is None:
            shutil.rmtree(self.stage, ignore_errors=True)
            scored.write.mode("overwrite").parquet(str(self.stage))
        else:
            self.table.discard()  # a killed Spark job starts over: its partial staging goes
            self.table.write(0, pa.Table.from_batches([], schema=self.schema))
            options = jdbc_options(self.table.target.url)
            scored.write.format("jdbc").options(**options).option(
                "dbtable", self.table.stage_name
            ).mode("append").save()
        scored.unpersist()
        return rows

    def publish(self) -> None:
        if self.table is not None:
            self.table.publish()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            self.path.rmdir()
        os.replace(self.stage, self.path)

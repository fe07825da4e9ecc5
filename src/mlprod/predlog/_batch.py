"""Batch jobs' predictions: narrow rows in bulk, one chunk per call, no per-row Python objects
beyond what the driver needs.

A served prediction's row carries its request and is written a few at a time; a batch
job writes 100,000 rows that share their model, version and time (kept once, in the
job's ``batch_jobs`` row), so each of its rows is only the job's key, the row's number,
the entity and the score. SQLite takes them through one ``executemany``; PostgreSQL
through ``COPY`` (text that Arrow writes in C). The caller's transaction makes a chunk's
rows, its monitoring counts and the job's progress one unit, so a chunk is never written
twice.

Example::

    insert_batch_predictions(store, job="3f2a9c1e77d0b4a1", seqs=np.arange(0, 100_000),
                             scores=scores, entities=batch.column("customer_id"))
"""

from __future__ import annotations

import io
from itertools import repeat

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy.engine import Connection

from mlprod.errors import DataError
from mlprod.store import MetadataStore


def insert_batch_predictions(
    store: MetadataStore,
    *,
    job: str,
    seqs: np.ndarray,
    scores: np.ndarray,
    entities: pa.Array | pa.ChunkedArray | None,
) -> int:
    """Store one chunk of a batch job's predictions; returns how many rows were written.

    `seqs` number the rows (their ids' second half), `scores` may hold NaN (stored as no
    score), `entities` is the entity column or None when the model names none.
    """
    n = len(seqs)
    if not (len(scores) == n and (entities is None or len(entities) == n)):
        raise DataError(f"a batch chunk needs as many scores and entities as rows ({n})")
    if n == 0:
        return 0
    scores = np.asarray(scores, dtype=float)
    score_array = pa.array(scores, pa.float64(), mask=~np.isfinite(scores))
    keys = pa.nulls(n, pa.string()) if entities is None else entities.cast(pa.string())
    seq_array = pa.array(np.asarray(seqs, dtype=np.int64))

    def work(conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            return _copy(conn, job, seq_array, keys, score_array)
        rows = zip(
            repeat(job, n), seq_array.to_pylist(), keys.to_pylist(), score_array.to_pylist(),
            strict=False,
        )  # fmt: skip
        conn.exec_driver_sql(_SQLITE, list(rows))
        return n

    return int(store.write(work))


_SQLITE = "INSERT INTO batch_predictions (job, seq, entity, score) VALUES (?, ?, ?, ?)"


def _copy(
    conn: Connection, job: str, seqs: pa.Array, keys: pa.Array | pa.ChunkedArray, scores: pa.Array
) -> int:
    """The rows as CSV written by Arrow, streamed into ``COPY`` on the transaction's connection."""
    table = pa.table({"job": pa.array(np.full(len(seqs), job, dtype=object), pa.string()),
                      "seq": seqs, "entity": keys, "score": scores})  # fmt: skip
    text = io.BytesIO()
    pacsv.write_csv(table, text, pacsv.WriteOptions(include_header=False))
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        statement = "COPY batch_predictions (job, seq, entity, score) FROM STDIN (FORMAT csv)"
        with cursor.copy(statement) as copy:
            copy.write(text.getbuffer())
    return len(seqs)

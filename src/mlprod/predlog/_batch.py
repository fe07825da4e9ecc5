"""Batch jobs' predictions: narrow rows in bulk, one chunk per call, no per-row Python objects
beyond what the driver needs.

A served prediction's row carries its request and is written a few at a time; a batch
job writes 100,000 rows that share their model, version and time (kept once, in the
job's ``batch_jobs`` row), so each of its rows is only the job's key, the row's number,
the entity and the score. A multiclass version's row also keeps its predicted class (as
JSON, like a served prediction's label): its score is only the top class's probability,
from which the class does not follow. SQLite takes them as one JSON document it unpacks in C;
PostgreSQL through ``COPY`` (text that Arrow writes in C). The caller's transaction makes a chunk's
rows, its monitoring counts and the job's progress one unit, so a chunk is never written
twice.

Example::

    insert_batch_predictions(store, job="3f2a9c1e77d0b4a1", seqs=np.arange(0, 100_000),
                             scores=scores, entities=batch.column("customer_id"))
"""

from __future__ import annotations

import io

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
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
    labels: pa.Array | pa.ChunkedArray | None = None,
) -> int:
    """Store one chunk of a batch job's predictions; returns how many rows were written.

    `seqs` number the rows (their ids' second half), `scores` may hold NaN (stored as no
    score), `entities` is the entity column or None when the model names none. `labels`:
    a multiclass version's predicted classes (null where there is no score), stored as
    JSON like a served prediction's label; None for a binary version, whose label follows
    from its score and threshold.
    """
    n = len(seqs)
    if not all(column is None or len(column) == n for column in (scores, entities, labels)):
        raise DataError(f"a batch chunk needs as many scores, entities and labels as rows ({n})")
    if n == 0:
        return 0
    scores = np.asarray(scores, dtype=float)
    columns = {
        "job": pa.array(np.full(n, job, dtype=object), pa.string()),
        "seq": pa.array(np.asarray(seqs, dtype=np.int64)),
        "entity": pa.nulls(n, pa.string()) if entities is None else entities.cast(pa.string()),
        "score": pa.array(scores, pa.float64(), mask=~np.isfinite(scores)),
    }
    if labels is not None:
        columns["label"] = _json_values(labels)
    table = pa.table(columns)

    def work(conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            return _copy(conn, table)
        return _insert_json(conn, table)

    return int(store.write(work))


def _json_values(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value as JSON text (null stays null), encoded once per distinct value."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    texts = [orjson.dumps(value).decode() for value in encoded.dictionary.to_pylist()]
    return pa.array(texts, pa.string()).take(encoded.indices)


BATCH_CACHE_KIB = 8192  # SQLite's page cache on a connection that takes batch rows


def _insert_json(conn: Connection, table: pa.Table) -> int:
    """The rows as one JSON document that SQLite unpacks itself (``json_each``).

    Binding 100,000 rows of parameters holds the GIL for each of them, and the scoring
    threads wait; one text parameter is bound at once and SQLite's own loop, which
    releases the GIL, does the rest. JSON numbers round-trip a double exactly; a missing
    score is JSON null, so SQL NULL.
    """
    job = table.column("job")[0].as_py()
    names = table.column_names[1:]
    # A job's rows arrive in key order, so a small page cache serves them; the store's
    # 64 MB (for the served log's random keys) was an eighth of a job's peak memory.
    conn.exec_driver_sql(f"PRAGMA cache_size = -{BATCH_CACHE_KIB}")
    columns = [column.to_pylist() for column in table.columns[1:]]
    document = orjson.dumps(list(zip(*columns, strict=True)))
    values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(names)))
    statement = (
        f"INSERT INTO batch_predictions (job, {', '.join(names)}) "
        f"SELECT ?, {values} FROM json_each(?)"
    )
    conn.exec_driver_sql(statement, (job, document))
    return int(table.num_rows)


def _copy(conn: Connection, table: pa.Table) -> int:
    """The rows as CSV written by Arrow, streamed into ``COPY`` on the transaction's connection."""
    text = io.BytesIO()
    pacsv.write_csv(table, text, pacsv.WriteOptions(include_header=False))
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        names = ", ".join(table.column_names)
        statement = f"COPY batch_predictions ({names}) FROM STDIN (FORMAT csv)"
        with cursor.copy(statement) as copy:
            copy.write(text.getbuffer())
    return int(table.num_rows)

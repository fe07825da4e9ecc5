"""The rows a batch job writes: a prediction id, the keys, model, version, score, label, time.

A multiclass version's rows also hold one ``proba_<class>`` column per class, in class
order; its score is the probability of its label, the most probable class (as the server
answers). A row whose scores are not all finite gets no score, label or probabilities.

Prediction ids are 32 hex digits: 16 naming the job, 16 numbering the row in the source.
So a resumed job gives a re-scored row the id it had the first time, and the prediction
log, the output and an outcome that quotes the id always agree.

Example::

    schema = output_schema(model, source.schema, keep=["region"])
    rows = output_rows(model, schema, batch, scores, job_key="3f2a9c1e77d0b4a1", start=0,
                       scored_at=now)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from mlprod.bundle import Model
from mlprod.errors import DataError

SCORED = ("model", "version", "score", "label", "scored_at")
ID = "prediction_id"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def proba_columns(model: Model) -> list[str]:
    """A multiclass version's probability columns, ``proba_<class>`` in class order; binary: none.

    Classes bronze, gold and silver give ``proba_bronze``, ``proba_gold``, ``proba_silver``.
    """
    if not model.multiclass:
        return []
    names = [f"proba_{label}" for label in model.classes]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(
            f"{model.name}@{model.version} has classes whose names print alike, so their "
            f"probability columns {twice} would collide; retrain with distinct class values"
        )
    return names


def key_columns(model: Model, schema: pa.Schema, keep: Sequence[str]) -> list[str]:
    """Input columns carried into the output: the entity, the time, then `keep`."""
    names = schema.names
    written = (ID, *SCORED, *proba_columns(model))
    if list(keep) == ["*"]:
        keep = [n for n in names if n not in written]
    wanted = [model.signature.get("entity"), model.signature.get("time"), *keep]
    columns: list[str] = []
    for name in wanted:
        if name and name in names and name not in columns:
            columns.append(str(name))
    missing = [name for name in keep if name not in names]
    if missing:
        raise DataError(f"--keep names column(s) {missing} that the input does not have")
    clash = [name for name in columns if name in written]
    if clash:
        probas = [name for name in clash if name not in (ID, *SCORED)]
        why = (
            f" ({', '.join(probas)}: the class probabilities of {model.name}@{model.version})"
            if probas
            else ""
        )
        raise DataError(
            f"input column(s) {clash} would overwrite what scoring writes{why}; rename them "
            "in the input or leave them out of --keep"
        )
    return columns


def check_features(model: Model, schema: pa.Schema) -> None:
    """Every feature column is in the input, or a `DataError` naming all that are not."""
    missing = [name for name in model.feature_names if name not in schema.names]
    if missing:
        raise DataError(
            f"the input lacks feature column(s) {missing} that {model.name}@{model.version} "
            f"needs; it has {schema.names[:30]}. Nothing was written"
        )


def output_schema(model: Model, schema: pa.Schema, keep: Sequence[str]) -> pa.Schema:
    """The output's columns and types, known before any row is scored."""
    check_features(model, schema)
    fields = [pa.field(ID, pa.string())]
    for name in key_columns(model, schema, keep):
        fields.append(pa.field(name, _writable(schema.field(name).type)))
    fields += [
        pa.field("model", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("score", pa.float64()),
        pa.field("label", pa.array(model.classes).type),
        pa.field("scored_at", pa.timestamp("us", tz="UTC")),
    ]
    fields += [pa.field(name, pa.float64()) for name in proba_columns(model)]
    return pa.schema(fields)


def _writable(kind: pa.DataType) -> pa.DataType:
    """One type per family, so every sink (and a COPY into PostgreSQL) takes the column."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind):
        return pa.int64()
    if pa.types.is_floating(kind):
        return pa.float64()
    if pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return pa.string()
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", tz=kind.tz)
    if pa.types.is_date(kind):
        return pa.date32()
    return kind


def prediction_ids(job_key: str, start: int, n: int) -> pa.Array:
    """`n` ids for source rows `start`.. of the job `job_key` (16 hex digits)."""
    rows = np.arange(start, start + n, dtype=np.uint64)
    data = np.empty((n, 32), dtype=np.uint8)
    data[:, :16] = np.frombuffer(job_key.encode(), dtype=np.uint8)
    data[:, 16:] = _HEX[((rows[:, None] >> _SHIFTS) & np.uint64(0xF)).astype(np.intp)]
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


def output_rows(
    model: Model,
    schema: pa.Schema,
    batch: pa.RecordBatch,
    scores: np.ndarray,
    *,
    job_key: str,
    start: int,
    scored_at: datetime,
) -> pa.Table:
    """The output rows of one scored chunk, in `schema`'s columns and types.

    `scores`: P(positive) per row, or a multiclass version's n x k class probabilities.
    """
    n = batch.num_rows
    answers = _answers(model, scores, schema.field("label").type)
    columns: dict[str, Any] = {ID: prediction_ids(job_key, start, n)}
    for f in schema:
        if f.name not in columns and f.name not in SCORED and f.name not in answers:
            columns[f.name] = batch.column(f.name).cast(f.type)
    columns["model"] = pa.array(np.full(n, model.name, dtype=object), pa.string())
    columns["version"] = pa.array(np.full(n, model.version or 0, dtype=np.int64))
    columns.update(answers)
    columns["scored_at"] = pa.array(np.full(n, np.datetime64(_naive(scored_at), "us")))
    columns["scored_at"] = columns["scored_at"].cast(pa.timestamp("us", tz="UTC"))
    return pa.Table.from_pydict(columns, schema=schema)


def _answers(model: Model, scores: np.ndarray, label_type: pa.DataType) -> dict[str, pa.Array]:
    """Score and label columns (and a multiclass version's probabilities); NaN is no answer."""
    if scores.ndim == 1:
        finite = np.isfinite(scores)
        negative, positive = model.classes
        labels = np.where(scores >= model.threshold, positive, negative)
        return {
            "score": pa.array(scores, pa.float64(), mask=~finite),
            "label": pa.array(labels, label_type, mask=~finite),
        }
    finite = np.isfinite(scores).all(axis=1)
    # the first of tied classes wins, as in `Model.predict`
    best = np.argmax(np.where(finite[:, None], scores, 0.0), axis=1)
    top = scores[np.arange(len(scores)), best]
    classes = pa.array(model.classes, label_type)
    answers = {
        "score": pa.array(top, pa.float64(), mask=~finite),
        "label": classes.take(pa.array(best, pa.int64(), mask=~finite)),
    }
    for j, name in enumerate(proba_columns(model)):
        column = np.ascontiguousarray(scores[:, j])
        answers[name] = pa.array(column, pa.float64(), mask=~finite)
    return answers


def logged_answers(
    rows: pa.Table | pa.RecordBatch, multiclass: bool
) -> tuple[np.ndarray, pa.Array | pa.ChunkedArray | None]:
    """What the prediction log and monitoring take from output rows: each row's score (NaN
    where there is none; a multiclass version's top-class probability) and, for a
    multiclass version, its predicted class (null where there is none)."""
    scores = np.asarray(rows.column("score").to_numpy(zero_copy_only=False), dtype=float)
    return scores, rows.column("label") if multiclass else None


def _naive(at: datetime) -> datetime:
    """UTC wall-clock time without a zone: what numpy's datetime64 holds."""
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo is not None else at

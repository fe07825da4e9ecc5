"""Batch scoring of files in bounded-memory chunks, written back with version and time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlprod.bundle import Model
from mlprod.data import load_frame
from mlprod.errors import DataError
from mlprod.monitoring import Binner, LiveStats

CHUNK_ROWS = 100_000


def _chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    suffix = "".join(path.suffixes[-2:]).lower()
    if not path.is_file():
        raise DataError(f"no input file at {path}; pass an existing CSV or Parquet file")
    if path.suffix.lower() in (".parquet", ".pq"):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    elif path.suffix.lower() == ".csv" or suffix == ".csv.gz":
        yield from pd.read_csv(path, chunksize=chunk_rows)
    else:
        yield load_frame(path)


def score_frame(model: Model, frame: pd.DataFrame, scored_at: datetime) -> pd.DataFrame:
    """`frame` with score, label, model, version and scored_at columns added."""
    scores = model.score(frame)
    negative, positive = model.classes
    labels = np.where(scores >= model.threshold, positive, negative)
    return frame.assign(
        score=scores,
        label=labels,
        model=model.name,
        version=model.version if model.version is not None else -1,
        scored_at=pd.Timestamp(scored_at),
    )


def score_file(
    model: Model,
    source: str | Path,
    output: str | Path,
    *,
    chunk_rows: int = CHUNK_ROWS,
    stats: LiveStats | None = None,
) -> int:
    """Score `source` chunk by chunk into Parquet (or CSV) at `output`; returns the row count.

    Memory stays bounded by `chunk_rows` whatever the file size. With `stats`, every
    chunk is also counted into the version's reference bins, as a server counts its
    traffic, so batch scoring shows up in monitoring (merge `stats` into the store after).
    """
    source, output = Path(source), Path(output)
    scored_at = datetime.now(UTC)
    reference = model.reference if stats is not None else None
    binner = Binner(reference) if reference is not None else None
    rows = 0
    writer: pq.ParquetWriter | None = None
    as_csv = output.suffix.lower() == ".csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    try:
        for i, chunk in enumerate(_chunks(source, chunk_rows)):
            scored = score_frame(model, chunk, scored_at)
            rows += len(scored)
            if stats is not None:
                stats.add(
                    model.name,
                    model.version or 0,
                    scored_at,
                    scored["score"].to_numpy(),
                    threshold=model.threshold,
                    binner=binner,
                    frame=chunk,
                )
            if as_csv:
                scored.to_csv(tmp, mode="a", header=i == 0, index=False)
                continue
            table = pa.Table.from_pandas(scored, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    if rows == 0:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{source} has no rows to score")
    tmp.replace(output)
    return rows

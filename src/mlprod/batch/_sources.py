"""What a batch job reads: Parquet or CSV files (a file, a folder, a glob) or a SQL query.

Every reader yields Arrow record batches of exactly `chunk_rows` rows (the last one
shorter), whatever the files' row groups: chunk *k* is always rows ``k*chunk_rows`` up to
``(k+1)*chunk_rows`` of the source, which is what lets a killed job resume at a chunk
boundary. Parquet is read through a small buffer, so a file written as one huge row
group still streams in bounded memory.

Example::

    source = open_source("events/*.parquet")
    source.schema.names, source.rows
    for batch in source.batches(skip=0, chunk_rows=100_000): ...
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlprod.batch._sql import Database, SqlQuery
from mlprod.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")
READ_BUFFER = 8 << 20  # bytes of a column chunk read at a time


class Source(Protocol):
    """A readable input: its columns before anything is read, then batches of rows."""

    schema: pa.Schema
    rows: int | None  # None when unknown before reading (a query)

    def describe(self) -> dict[str, Any]:
        """What was read and how to recognise it again (for resuming)."""
        ...

    def batches(self, skip: int, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        """Record batches of `chunk_rows` rows, starting after the first `skip` rows."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_source(source: str | Path | SqlQuery) -> Source:
    """A reader for a path, folder, glob, or `SqlQuery`; `DataError` when there is nothing."""
    if isinstance(source, SqlQuery):
        return QuerySource(source)
    return FileSource(_files(str(source)))


def _files(pattern: str) -> list[Path]:
    path = Path(pattern)
    if path.is_dir():
        found = sorted(  # hidden folders (a job's staging, say) are not input
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.name.lower().endswith(PARQUET_SUFFIXES)
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not found:
            raise DataError(f"folder {pattern!r} holds no .parquet files to score")
        return found
    if path.is_file():
        if not path.name.lower().endswith(PARQUET_SUFFIXES + CSV_SUFFIXES):
            raise DataError(
                f"cannot score {pattern!r}: pass a .parquet or .csv file, a folder of "
                "Parquet files, a glob such as 'data/*.parquet', or --input-sql"
            )
        return [path]
    if glob.has_magic(pattern):
        found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"no file matches {pattern!r}")
        odd = [p.name for p in found if not p.name.lower().endswith(PARQUET_SUFFIXES)]
        if odd:
            raise DataError(f"{pattern!r} matches files that are not Parquet: {odd[:5]}")
        return found
    raise DataError(f"no input at {pattern!r}: pass an existing file, folder or glob")


class FileSource:
    """Parquet files (one schema) or one CSV file, read in order."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.csv = len(paths) == 1 and paths[0].name.lower().endswith(CSV_SUFFIXES)
        if self.csv:
            self.schema, self.rows = _csv_schema(paths[0]), None
            return
        files = [_parquet(p) for p in paths]
        self.schema = files[0].schema_arrow
        self.rows = sum(f.metadata.num_rows for f in files)
        for path, file in zip(paths[1:], files[1:], strict=True):
            _same_columns(self.schema, file.schema_arrow, paths[0], path)

    def describe(self) -> dict[str, Any]:
        stats = [p.stat() for p in self.paths]
        return {
            "kind": "csv" if self.csv else "parquet",
            "files": [str(p.resolve()) for p in self.paths],
            "sizes": [s.st_size for s in stats],
            "modified_ns": [s.st_mtime_ns for s in stats],
        }

    def batches(self, skip: int, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        if self.csv:
            yield from _csv_batches(self.paths[0], skip, chunk_rows, self.schema)
            return
        yield from rechunk(self._parquet_batches(skip, chunk_rows), chunk_rows)

    def close(self) -> None:
        """Files hold nothing open between batches."""

    def _parquet_batches(self, skip: int, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        for path in self.paths:
            file = _parquet(path)
            groups = []
            for group in range(file.metadata.num_row_groups):
                size = file.metadata.row_group(group).num_rows
                if skip >= size:
                    skip -= size  # resuming: whole row groups are skipped without reading
                    continue
                groups.append(group)
            if not groups:
                continue
            for batch in file.iter_batches(
                batch_size=min(chunk_rows, 65_536), row_groups=groups, use_threads=True
            ):
                if skip:
                    cut = min(skip, batch.num_rows)
                    batch, skip = batch.slice(cut), skip - cut
                if batch.num_rows:
                    yield _conform(batch, self.schema, path)


def _parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, buffer_size=READ_BUFFER, pre_buffer=False)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"cannot read {str(path)!r} as Parquet: {exc}") from None


def _same_columns(first: pa.Schema, other: pa.Schema, first_path: Path, path: Path) -> None:
    if set(first.names) != set(other.names):
        missing = sorted(set(first.names) - set(other.names))
        extra = sorted(set(other.names) - set(first.names))
        raise DataError(
            f"{path.name} has other columns than {first_path.name}: missing {missing}, "
            f"extra {extra}; every file of one input needs the same columns"
        )


def _conform(batch: pa.RecordBatch, schema: pa.Schema, path: Path) -> pa.RecordBatch:
    """`batch` in the first file's column order and types (files may differ in both)."""
    if batch.schema.equals(schema):
        return batch
    try:
        table = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
        raise DataError(
            f"{path.name}: its columns do not convert to the first file's: {exc}"
        ) from None
    return table.combine_chunks().to_batches()[0]


def rechunk(batches: Iterator[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly `chunk_rows` rows (the last shorter) from batches of any size."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield _one(table.slice(0, chunk_rows))
            rest = table.slice(chunk_rows)
            pending, held = ([_one(rest)] if rest.num_rows else []), rest.num_rows
    if held:
        yield _one(pa.Table.from_batches(pending))


def _one(table: pa.Table) -> pa.RecordBatch:
    combined = table.combine_chunks()
    batches = combined.to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]


def _csv_schema(path: Path) -> pa.Schema:
    try:
        head = pd.read_csv(path, nrows=1000)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"cannot read {str(path)!r} as CSV: {exc}") from None
    return pa.Schema.from_pandas(head, preserve_index=False)


def _csv_batches(
    path: Path, skip: int, chunk_rows: int, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """pandas reads CSV as training did (its type inference, chunk by chunk)."""
    try:
        reader = pd.read_csv(path, chunksize=chunk_rows)
        for frame in reader:
            if skip >= len(frame):
                skip -= len(frame)
                continue
            frame = frame.iloc[skip:]
            skip = 0
            yield _conform(pa.RecordBatch.from_pandas(frame, preserve_index=False), schema, path)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"cannot read {str(path)!r} as CSV: {exc}") from None


@dataclass
class QuerySource:
    """The rows of one SQL query, streamed (PostgreSQL as Arrow, others through pandas)."""

    query: SqlQuery

    def __post_init__(self) -> None:
        self.database = Database(self.query.url)
        self.schema = self.database.query_schema(self.query.query)
        self.rows: int | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": "sql", "url": self.database.shown, "query": self.query.query}

    def batches(self, skip: int, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        stream = self.database.read(self.query.query, chunk_rows)
        yield from rechunk(_skipped(stream, skip, self.schema), chunk_rows)

    def close(self) -> None:
        self.database.close()


def _skipped(
    batches: Iterator[pa.RecordBatch], skip: int, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        if skip:
            batch, skip = batch.slice(skip), 0
        if not batch.schema.equals(schema):
            batch = _conform(batch, schema, Path("the query"))
        yield batch

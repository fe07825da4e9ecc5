"""A dataset fingerprint: which exact rows a run was trained on, in a few hundred bytes.

A run records it so that "same data?" is a string comparison, and so that a retrain
can say how the data moved (rows, missing values, time range) without keeping a copy.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlprod.data._sources import parse_times, require_columns


class ColumnInfo(BaseModel):
    """One column as a run saw it."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str
    missing: int


class DataFingerprint(BaseModel):
    """Content hash, shape and time range of a training table.

    `sha256` covers column names, dtypes and every value in row order; it ignores the
    pandas index and is the same in every process and on every run.
    """

    model_config = ConfigDict(frozen=True)

    sha256: str
    rows: int
    columns: list[ColumnInfo]
    time_column: str | None = None
    time_min: datetime | None = None
    time_max: datetime | None = None


def fingerprint(df: pd.DataFrame, time_column: str | None = None) -> DataFingerprint:
    """Fingerprint `df`; with `time_column`, also the range of its (non-missing) times.

    Example::

        fp = fingerprint(load_frame("customers.csv"), time_column="event_time")
        fp.sha256, fp.rows, fp.time_min
    """
    columns = [
        ColumnInfo(name=str(name), dtype=str(values.dtype), missing=int(values.isna().sum()))
        for name, values in _columns(df)
    ]
    time_min = time_max = None
    if time_column is not None:
        require_columns(df, [time_column], where="data.time in mlprod.yaml")
        times = parse_times(df[time_column], time_column).dropna()
        if len(times):
            time_min, time_max = _to_datetime(times.min()), _to_datetime(times.max())
    return DataFingerprint(
        sha256=content_hash(df),
        rows=len(df),
        columns=columns,
        time_column=time_column,
        time_min=time_min,
        time_max=time_max,
    )


def content_hash(df: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and values in row order, ignoring the index."""
    digest = hashlib.sha256()
    header = [[str(name), str(values.dtype)] for name, values in _columns(df)]
    digest.update(json.dumps(header).encode())
    digest.update(len(df).to_bytes(8, "little"))
    if len(df.columns):
        try:
            rows = pd.util.hash_pandas_object(df, index=False)
        except TypeError:
            # Unhashable cells (lists, dicts) are hashed by their text instead.
            rows = pd.util.hash_pandas_object(df.astype(str), index=False)
        digest.update(rows.to_numpy().astype("<u8").tobytes())
    return digest.hexdigest()


def _columns(df: pd.DataFrame) -> list[tuple[object, pd.Series]]:
    """(name, values) pairs by position, so duplicate column names do not collapse."""
    return [(name, df.iloc[:, i]) for i, name in enumerate(df.columns)]


def _to_datetime(value: pd.Timestamp) -> datetime:
    """Python datetime at microsecond precision (datetime cannot hold nanoseconds)."""
    stamp: datetime = pd.Timestamp(value).floor("us").to_pydatetime()
    return stamp

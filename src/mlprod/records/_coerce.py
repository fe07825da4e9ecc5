"""Turning raw column values into the one representation training and serving share.

Training reads CSV, Parquet or SQL; serving reads JSON. The same value must come out
of both: ``"5"``, ``5`` and ``5.0`` are the same category, ``"yes"`` and ``True`` the same
boolean, and an ISO string the same instant as a parsed timestamp.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

MISSING = "__missing__"
_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
DATETIME_PARTS = ("year", "month", "day_of_week", "hour")
NO_PARTS = (np.nan,) * len(DATETIME_PARTS)
# Strict ISO 8601 within pandas' nanosecond range; anything else goes through pandas.
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}"  # date
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"  # time to the minute, seconds optional
    r"(?:Z|[+-]\d{2}:?\d{2})?)?"  # offset
)
_ISO_YEARS = (1678, 2261)


def as_numeric(values: pd.Series) -> np.ndarray:
    """Floats; anything unparseable becomes NaN (missing), as in training."""
    import pandas as pd  # the column is a Series: pandas is loaded already

    if values.dtype == bool:
        return values.to_numpy(dtype=float)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def distinct_codes(values: pd.Series) -> tuple[np.ndarray, list[Any]] | None:
    """Each value's code (-1: missing) and the distinct values, for a typed column.

    What lets a column be converted once per distinct value instead of once per row. None
    for an object column: there ``True`` and ``1`` are equal keys but different labels.
    """
    import pandas as pd

    if not _typed(values):
        return None
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, uniques.tolist()


def _per_distinct(
    distinct: tuple[np.ndarray, list[Any]], convert: Callable[[object], Any], missing: Any
) -> np.ndarray:
    """`convert` applied once per distinct value (`distinct_codes`), spread by code."""
    codes, uniques = distinct
    labels = [convert(value) for value in uniques]
    table = np.array([*labels, missing], dtype=object if isinstance(missing, str) else float)
    return np.asarray(table[codes])  # code -1 (missing) takes the last entry


def _typed(values: pd.Series) -> bool:
    """Numbers, booleans, strings or categories: columns whose equal values mean the same."""
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype):
        return True
    return not pd.api.types.is_object_dtype(dtype) and (
        pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    )


def as_category(values: pd.Series) -> np.ndarray:
    """Strings, with integral floats written as integers and missing as `MISSING`."""
    distinct = distinct_codes(values)
    if distinct is not None:
        return _per_distinct(distinct, category_string, MISSING)
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values.tolist()):
        out[i] = category_string(value)
    return out


def _pandas_na(value: object) -> bool:
    """Whether `value` is pandas' NA; pandas not imported, nothing can be."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is pandas.NA


def category_string(value: object) -> str:
    """The category label of one raw value."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, str):
        return str(value)
    return MISSING if _pandas_na(value) else str(value)


def as_boolean(values: pd.Series) -> np.ndarray:
    """1.0 / 0.0 for true / false spellings, NaN for missing or anything else."""
    if values.dtype == bool:
        return values.to_numpy(dtype=float)
    distinct = distinct_codes(values)
    if distinct is not None:
        return _per_distinct(distinct, boolean_value, np.nan)
    out = np.full(len(values), np.nan)
    for i, value in enumerate(values.tolist()):
        out[i] = boolean_value(value)
    return out


def boolean_value(value: object) -> float:
    """1.0, 0.0 or NaN for one raw value."""
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if value is None:
        return np.nan
    # pandas' NA reads MISSING here, so it comes out NaN below, as before.
    text = category_string(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    return np.nan


def as_datetime(values: pd.Series) -> pd.Series:
    """UTC-naive timestamps; unparseable values become NaT (missing)."""
    import pandas as pd

    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    return parsed.dt.tz_localize(None)


def json_safe(value: Any) -> Any:
    """A plain JSON value for one cell (numpy scalars, timestamps, missing)."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return json_safe(value.item())
    pandas = sys.modules.get("pandas")  # without pandas imported, no NaT or Timestamp
    if pandas is not None:
        if value is pandas.NaT:
            return None
        if isinstance(value, pandas.Timestamp):
            return value.isoformat()
    return value


@functools.lru_cache(maxsize=8192)
def iso_parts(text: str) -> tuple[float, ...] | None:
    """Year, month, weekday, UTC hour of a strict ISO string; None means "ask pandas"."""
    if _ISO.fullmatch(text) is None or not _ISO_YEARS[0] <= int(text[:4]) <= _ISO_YEARS[1]:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC)  # as pandas does with utc=True; naive means UTC
    return (float(stamp.year), float(stamp.month), float(stamp.weekday()), float(stamp.hour))


def datetime_parts(values: pd.Series) -> np.ndarray:
    """Year, month, day of week and hour as floats (NaN where missing)."""
    stamps = as_datetime(values)
    parts = [
        getattr(stamps.dt, part).to_numpy(dtype=float, na_value=np.nan) for part in DATETIME_PARTS
    ]
    return np.column_stack(parts)

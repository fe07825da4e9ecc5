"""DataFrame columns to the fast path's matrix: what a library caller hands `Model`.

Why: a DataFrame on the full pipeline pays for a new coerced frame and scikit-learn's
ColumnTransformer, milliseconds for one row. Here each column is read as the array pandas
already holds, coerced as the transformer coerces it, and written through the fast path's
compiled plan (imputer statistics, indicators, one-hot tables).

Why it is safe: the coercion is the transformer's own wherever a column is not one of the
plain typed cases (floats, integers, booleans, text, timestamps), whose conversions are
exact; and `FrameEncoder` serves only after it reproduces the transformer's matrix *exactly*
on the version's test set in several spellings and on the probe records (see
``_fastpath._verify_frames``). A frame it does not take (a column missing, a name twice,
an infinity) gets None, and the caller runs the full pipeline, which answers as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlprod.records._coerce import (
    NO_PARTS,
    as_boolean,
    as_category,
    as_numeric,
    category_string,
    datetime_parts,
    iso_parts,
)
from mlprod.records._rows import RowBuilder

if TYPE_CHECKING:
    from mlprod.records._fastpath import _Plan

Column = Any  # the array pandas holds for one column: numpy or an ExtensionArray
_NAT = np.iinfo(np.int64).min


def _column(frame: pd.DataFrame, position: int) -> Column:
    """The array behind column `position`, without building a Series (µs matter here)."""
    getter = getattr(frame, "_get_column_array", None)  # pandas' own fast accessor
    if getter is None:  # a pandas without it: the public way, slower
        return frame.iloc[:, position].array
    return getter(position)


def _numeric(values: Column) -> np.ndarray | None:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(float)  # what to_numeric gives, with no parsing to do
    return None


def _boolean(values: Column) -> np.ndarray | None:
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return values.astype(float)
    return None


def _datetime(values: Column) -> np.ndarray | None:
    """Year, month, day of week, UTC hour per row (n x 4), NaN where missing."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        unit = np.datetime_data(values.dtype)[0]
        ticks = values.view(np.int64)
    elif isinstance(values, pd.arrays.DatetimeArray):
        unit, ticks = values.unit, np.asarray(values.view(np.int64))  # UTC, whatever the zone
    else:
        return _datetime_text(values)
    stamps = ticks.view(f"datetime64[{unit}]")
    months = stamps.astype("datetime64[M]").astype(np.int64)
    days = stamps.astype("datetime64[D]").astype(np.int64)
    hours = stamps.astype("datetime64[h]").astype(np.int64) - days * 24
    parts = np.column_stack([months // 12 + 1970, months % 12 + 1, (days + 3) % 7, hours])
    parts = parts.astype(float)
    parts[ticks == _NAT] = np.nan
    return parts


def _datetime_text(values: Column) -> np.ndarray | None:
    """Strict ISO strings split as pandas splits them; anything else: None (pandas decides)."""
    found = []
    for value in _python_values(values):
        if type(value) is str:
            parts = iso_parts(value)
            if parts is None:
                return None
        elif value is None or (type(value) is float and value != value):
            parts = NO_PARTS
        else:
            return None
        found.append(parts)
    return np.asarray(found, dtype=float).reshape(len(found), 4)


def _labels(values: Column) -> list[str]:
    """`as_category` value by value: the same labels for every dtype, without factorizing."""
    return [category_string(value) for value in _python_values(values)]


def _python_values(values: Column) -> list[Any]:
    """The column's values as Python objects (text columns read through Arrow: faster)."""
    arrow = getattr(values, "__arrow_array__", None)
    if isinstance(values.dtype, pd.StringDtype) and arrow is not None:
        found: list[Any] = arrow().to_pylist()  # None where missing
        return found
    listed: list[Any] = values.tolist()
    return listed


def _names(columns: pd.Index) -> list[Any]:
    """The column names as Python objects; text names through Arrow (7 µs faster)."""
    if isinstance(columns.dtype, pd.StringDtype):
        return _python_values(columns.array)
    names: list[Any] = columns.tolist()
    return names


_FAST: dict[str, Callable[[Column], np.ndarray | None]] = {
    "numeric": _numeric,
    "boolean": _boolean,
    "datetime": _datetime,
}
_REFERENCE: dict[str, Callable[[pd.Series], np.ndarray]] = {
    "numeric": as_numeric,
    "boolean": as_boolean,
    "datetime": datetime_parts,
}


class FrameEncoder:
    """A DataFrame of raw columns to the transformer's float64 matrix, or None to decline.

    Example::

        encoder = FrameEncoder(fast.plan, {"tenure_months": "numeric", ...})
        matrix = encoder.encode(frame)   # None: run the full pipeline instead
    """

    def __init__(self, plan: _Plan, kinds: dict[str, str]) -> None:
        self.plan = plan
        self.kinds = [kinds[name] for name in plan.names]
        self._fill = np.asarray(plan.fill, dtype=float)
        self._dest = np.asarray(plan.dest, dtype=np.intp)
        self._indicator_src = np.asarray(plan.indicator_src, dtype=np.intp)
        self._indicator_dest = np.asarray(plan.indicator_dest, dtype=np.intp)
        self._imputed = sorted({i for i, _ in plan.inputs})
        # (field, part): part -1 for a field read as one column (numeric, boolean)
        self._inputs = [(i, p if self.kinds[i] == "datetime" else -1) for i, p in plan.inputs]
        self._rows = RowBuilder(plan)

    def encode(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The matrix `transformer.transform(frame)` gives, or None for the full pipeline."""
        positions = self._positions(frame)
        if positions is None:
            return None
        plan, n = self.plan, len(frame)
        parts: dict[int, np.ndarray] = {}
        for i in self._imputed:
            kind = self.kinds[i]
            values = _FAST[kind](_column(frame, positions[i]))
            if values is None:
                values = _REFERENCE[kind](frame.iloc[:, positions[i]])
            parts[i] = values
        if n == 1:
            return self._encode_one(frame, positions, parts)
        out = np.zeros((n, plan.width))
        if plan.inputs:
            raw = np.array([parts[i] if p < 0 else parts[i][:, p] for i, p in self._inputs]).T
            if np.isinf(raw).any():
                return None  # the transformer's imputer refuses infinity: let it say so
            missing = np.isnan(raw)
            out[:, self._dest] = np.where(missing, self._fill, raw)
            out[:, self._indicator_dest] = missing[:, self._indicator_src]
        out.reshape(-1)[self._hot(frame, positions)] = 1.0
        return out

    def _hot(self, frame: pd.DataFrame, positions: list[int]) -> list[int]:
        """The flat positions of the one-hot ones in the n x width matrix."""
        hot: list[int] = []
        width, n = self.plan.width, len(frame)
        for i, codes in self.plan.categories:
            column = _column(frame, positions[i])
            labels = _labels(column) if n <= 64 else as_category(frame.iloc[:, positions[i]])
            lookup, unknown = codes.lookup, codes.unknown
            hot += [
                row * width + code
                for row, label in enumerate(labels)
                if (code := lookup.get(label, unknown)) >= 0
            ]
        return hot

    def _encode_one(
        self, frame: pd.DataFrame, positions: list[int], parts: dict[int, np.ndarray]
    ) -> np.ndarray | None:
        """`encode` for one row: the same column conversions, one Python row."""
        values = [float(parts[i][0] if p < 0 else parts[i][0, p]) for i, p in self._inputs]
        return self._rows.matrix(values, self._hot(frame, positions))

    def _positions(self, frame: pd.DataFrame) -> list[int] | None:
        """Each field's column position; None if one is missing or a name appears twice."""
        names = _names(frame.columns)
        where = {name: i for i, name in enumerate(names)}
        if len(where) != len(names):
            return None
        try:
            return [where[name] for name in self.plan.names]
        except KeyError:  # the transformer names what is missing
            return None


def frame_variants(frame: pd.DataFrame, kinds: dict[str, str]) -> Sequence[pd.DataFrame]:
    """The test rows as callers hold them: as stored, as objects, with timestamps parsed
    (UTC, another zone, naive)."""
    variants = [frame, frame.astype(object)]
    times = [name for name, kind in kinds.items() if kind == "datetime" and name in frame]
    if times:
        parsed = frame.copy()
        for name in times:
            parsed[name] = pd.to_datetime(frame[name], errors="coerce", utc=True, format="mixed")
        zoned, naive = parsed.copy(), parsed.copy()
        for name in times:
            zoned[name] = parsed[name].dt.tz_convert("Asia/Kolkata")
            naive[name] = parsed[name].dt.tz_localize(None)
        variants += [parsed, zoned, naive]
    return variants

"""DataFrame columns to the fast path's matrix: what a library caller hands `Model`.

Why: a DataFrame on the full pipeline pays for a new coerced frame and scikit-learn's
ColumnTransformer, milliseconds for one row. Here each column is read as the array pandas
already holds, coerced as the transformer coerces it, and written through the fast path's
compiled plan (imputer statistics, indicators, one-hot tables). A one-row frame (what
a caller holding one record builds) skips the arrays: each column's single value is
converted on its own where that gives the column conversion's exact number.

Why it is safe: the coercion is the transformer's own wherever a column is not one of the
plain typed cases (floats, integers, booleans, text, timestamps), whose conversions are
exact; and `FrameEncoder` serves only after it reproduces the transformer's matrix *exactly*
on the version's test set in several spellings and on the probe records (see
``_fastpath._verify_frames``). A frame it does not take (a column missing, a name twice,
an infinity) gets None, and the caller runs the full pipeline, which answers as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlprod.records._coerce import (
    NO_PARTS,
    as_boolean,
    as_category,
    as_numeric,
    boolean_value,
    category_string,
    datetime_parts,
    iso_parts,
)
from mlprod.records._rows import RowBuilder

if TYPE_CHECKING:
    from mlprod.records._fastpath import _Plan

Column = Any  # the array pandas holds for one column: numpy or an ExtensionArray
_NAT = np.iinfo(np.int64).min
_NAN = float("nan")
_EXACT_INT = 2**53  # ints up to this are the same number as a float, however converted
_EPOCH = datetime(1970, 1, 1)  # naive: ticks count UTC from here
# microseconds per tick as (multiply, divide): floor division floors before 1970 too
_MICROSECONDS = {"s": (10**6, 1), "ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}


def _column(frame: pd.DataFrame, position: int) -> Column:
    """The array behind column `position`, without building a Series (µs matter here)."""
    getter = getattr(frame, "_get_column_array", None)  # pandas' own fast accessor
    if getter is None:  # a pandas without it: the public way, slower
        return frame.iloc[:, position].array
    return getter(position)


def _columns(frame: pd.DataFrame, positions: list[int]) -> list[Column]:
    """`_column` for several positions: what pandas' accessor does per column (its block,
    the column's place in it), with the lookup tables read once; half the cost at one row."""
    manager = getattr(frame, "_mgr", None)
    try:
        blocks, numbers = manager.blocks, manager.blknos.tolist()  # type: ignore[union-attr]
        places = manager.blklocs.tolist()  # type: ignore[union-attr]
    except AttributeError:  # another manager, or a pandas that lays blocks out otherwise
        return [_column(frame, position) for position in positions]
    return [blocks[numbers[position]].iget(places[position]) for position in positions]


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


def _first(values: Column) -> Any:
    """`_python_values(values)[0]`, without a Categorical's `tolist` (tens of µs): where its
    categories are text, its own item is the same value. (Of numbers it is a numpy scalar,
    and of timestamps a missing one is NaN there but NaT in `tolist`: another label.)"""
    if isinstance(values, pd.Categorical):
        kind = values.categories.dtype
        if pd.api.types.is_object_dtype(kind) or isinstance(kind, pd.StringDtype):
            return values[0]
    return _python_values(values)[0]


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


def _number_one(values: Column) -> float | None:
    """`_numeric` for a one-row column: numpy's own scalar as astype makes it a float; in
    an object column, a float, None or an exact int as `as_numeric` reads them."""
    if type(values) is np.ndarray:
        kind = values.dtype.kind
        if kind in "fiub":
            return float(values[0])
        if kind == "O":
            value = values[0]
            if type(value) is float:
                return value
            if value is None:
                return _NAN
            if type(value) is int and -_EXACT_INT <= value <= _EXACT_INT:
                return float(value)
    elif isinstance(values, pd.arrays.IntegerArray | pd.arrays.FloatingArray):
        value = values[0]  # a numpy scalar, as the array's to_numpy casts it, or NA
        return _NAN if value is pd.NA else float(value)
    return None


def _boolean_one(values: Column) -> float | None:
    """`_boolean` for a one-row column; an object or nullable column as `as_boolean` reads
    it (with `boolean_value`, per value or per distinct value)."""
    if type(values) is np.ndarray:
        kind = values.dtype.kind
        if kind == "b":
            return float(values[0])
        if kind == "O":
            return boolean_value(values[0])
    elif isinstance(values, pd.arrays.BooleanArray):  # read per distinct value: the same
        return boolean_value(values[0])
    return None


def _datetime_one(values: Column) -> tuple[float, ...] | None:
    """`_datetime` for a one-row column: a typed timestamp through Python's calendar, text
    as `_datetime_text` reads it."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return _stamp_parts(int(values.view(np.int64)[0]), np.datetime_data(values.dtype)[0])
    if isinstance(values, pd.arrays.DatetimeArray):
        return _stamp_parts(int(values.view(np.int64)[0]), values.unit)  # UTC, any zone
    value = _python_values(values)[0]
    if type(value) is str:
        return iso_parts(value)
    if value is None or (type(value) is float and value != value):
        return NO_PARTS
    return None


def _stamp_parts(tick: int, unit: str) -> tuple[float, ...] | None:
    """What `_datetime` computes for one tick: floors to the microsecond and then to the
    hour agree with numpy's floors to the hour and day. None: a unit or a year (past
    Python's 1-9999) it leaves to numpy."""
    if tick == _NAT:
        return NO_PARTS
    scale = _MICROSECONDS.get(unit)
    if scale is None:
        return None
    try:
        stamp = _EPOCH + timedelta(microseconds=tick * scale[0] // scale[1])
    except OverflowError:
        return None
    return (float(stamp.year), float(stamp.month), float(stamp.weekday()), float(stamp.hour))


# One row's value without an array per column; None: the column conversions decide.
_ONE: dict[str, Callable[[Column], float | tuple[float, ...] | None]] = {
    "numeric": _number_one,
    "boolean": _boolean_one,
    "datetime": _datetime_one,
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
        if n == 1:
            return self._encode_one(frame, positions)
        parts = {i: self._converted(frame, positions[i], i) for i in self._imputed}
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

    def _converted(self, frame: pd.DataFrame, position: int, field: int) -> np.ndarray:
        """Column `position` as field `field`'s floats (n, or n x 4 for a datetime)."""
        kind = self.kinds[field]
        values = _FAST[kind](_column(frame, position))
        return _REFERENCE[kind](frame.iloc[:, position]) if values is None else values

    def _encode_one(self, frame: pd.DataFrame, positions: list[int]) -> np.ndarray | None:
        """`encode` for one row: each column read once, its value converted on its own
        where that is exact (`_ONE`), by the column conversions above otherwise."""
        columns = _columns(frame, positions)
        parts: dict[int, Any] = {}
        for i in self._imputed:
            found = _ONE[self.kinds[i]](columns[i])
            parts[i] = self._converted(frame, positions[i], i)[0] if found is None else found
        values = [float(parts[i] if p < 0 else parts[i][p]) for i, p in self._inputs]
        hot = []
        for i, codes in self.plan.categories:
            value = _first(columns[i])
            label = value if type(value) is str else category_string(value)
            code = codes.lookup.get(label, codes.unknown)
            if code >= 0:
                hot.append(code)
        return self._rows.matrix(values, hot)

    def _positions(self, frame: pd.DataFrame) -> list[int] | None:
        """Each field's column position; None if one is missing or a name appears twice."""
        names = _names(frame.columns)
        where = dict(zip(names, range(len(names)), strict=True))
        if len(where) != len(names):
            return None
        try:
            return [where[name] for name in self.plan.names]
        except KeyError:  # the transformer names what is missing
            return None


def frame_variants(frame: pd.DataFrame, kinds: dict[str, str]) -> Sequence[pd.DataFrame]:
    """The test rows as callers hold them: as stored, as objects, in pandas' nullable
    dtypes with categoricals as categories, with timestamps parsed (UTC, another zone,
    naive)."""
    labels = {name: "category" for name, kind in kinds.items() if kind == "categorical"}
    nullable = frame.convert_dtypes().astype({k: v for k, v in labels.items() if k in frame})
    variants = [frame, frame.astype(object), nullable]
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

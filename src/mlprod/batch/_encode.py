"""Arrow columns straight to the model's matrix: the batch counterpart of serving's fast path.

Why: the reference path turns every chunk into a DataFrame, coerces it value by value in
Python (categories, booleans) and runs scikit-learn's ColumnTransformer; that is most of
a chunk's time once the trees are compiled. The fitted state of the transformer is small
(imputer statistics, missing indicators, one-hot tables), so it is applied here column by
column with Arrow and numpy. Categories are coerced once per *distinct* value (a
dictionary encode), by the same `category_string` the reference uses.

Why it is safe: `ArrowEncoder.check` must reproduce the transformer's matrix exactly on
the version's test set before a job uses it, and every chunk has a sample scored both
ways (see `_scorer`); a column type the encoder does not know goes through the
reference coercion functions themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlprod.features import (
    DATETIME_PARTS,
    MISSING,
    FeatureTransformer,
    as_boolean,
    as_numeric,
    category_string,
    datetime_parts,
)


class NotEncodableError(Exception):
    """The fitted transformer holds something the Arrow encoder does not reproduce."""


@dataclass
class _Imputed:
    """One imputer input: a field (and datetime part), its fill value, where it lands."""

    name: str
    part: int
    fill: float
    dest: int
    indicator: int = -1  # output column of its missing indicator, -1 when it has none


@dataclass
class _OneHot:
    """One categorical field: label -> output column (-1: no column), unknown labels' column."""

    name: str
    lookup: dict[str, int]
    unknown: int


@dataclass
class ArrowEncoder:
    """Record batches to the transformer's float64 matrix, column by column.

    Example::

        encoder = ArrowEncoder.from_model(model)   # NotEncodableError says why not
        matrix = encoder.encode(record_batch)
    """

    kinds: dict[str, str]
    width: int
    imputed: list[_Imputed] = field(default_factory=list)
    onehots: list[_OneHot] = field(default_factory=list)

    @classmethod
    def from_model(cls, model: Any) -> ArrowEncoder:
        """The encoder of `model`'s fitted FeatureTransformer."""
        transformer = model.transformer
        if type(transformer) is not FeatureTransformer or not hasattr(transformer, "encoder_"):
            kind = type(transformer).__name__
            raise NotEncodableError(f"the transformer is a {kind}, not a fitted FeatureTransformer")
        kinds = {str(k): str(v) for k, v in (transformer.kinds or {}).items()}
        encoder = cls(kinds=kinds, width=int(transformer.n_features_out_))
        ct = transformer.encoder_
        for name, fitted, inputs in ct.transformers_:
            if isinstance(fitted, str) and fitted == "drop":
                continue
            where: slice = ct.output_indices_[name]
            columns = [str(c) for c in inputs]
            if type(fitted).__name__ == "SimpleImputer":
                encoder._add_imputer(fitted, columns, where)
            else:
                encoder._add_onehot(fitted, columns, where)
        encoder._check_coverage()
        return encoder

    def encode(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        """The float64 matrix the transformer would produce for `batch`, in its column order."""
        out = np.zeros((batch.num_rows, self.width))
        parts: dict[str, np.ndarray] = {}
        for item in self.imputed:
            values = parts.get(item.name)
            if values is None:
                values = parts[item.name] = self._values(batch.column(item.name), item.name)
            column = values if values.ndim == 1 else values[:, item.part]
            missing = np.isnan(column)
            out[:, item.dest] = np.where(missing, item.fill, column)
            if item.indicator >= 0:
                out[:, item.indicator] = missing
        rows = np.arange(batch.num_rows)
        for onehot in self.onehots:
            codes = _category_codes(batch.column(onehot.name), onehot)
            hit = codes >= 0
            out[rows[hit], codes[hit]] = 1.0
        return out

    def _values(self, column: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
        kind = self.kinds[name]
        if kind == "numeric":
            return _numeric(column)
        if kind == "boolean":
            return _boolean(column)
        return _datetime(column)

    def _add_imputer(self, imputer: Any, inputs: list[str], where: slice) -> None:
        missing = imputer.missing_values
        if not (isinstance(missing, float) and np.isnan(missing)):
            raise NotEncodableError(f"an imputer treats {missing!r} as missing, not NaN")
        fill = np.asarray(imputer.statistics_, dtype=float)
        if fill.shape != (len(inputs),) or np.isnan(fill).any():
            raise NotEncodableError("an imputer dropped or cannot fill a column")
        indicator = getattr(imputer, "indicator_", None)
        flagged = [] if indicator is None else [int(j) for j in indicator.features_]
        if len(inputs) + len(flagged) != where.stop - where.start:
            raise NotEncodableError("an imputer's width is not its inputs plus indicators")
        start = len(self.imputed)
        for j, column in enumerate(inputs):
            name, part = self._source(column)
            self.imputed.append(_Imputed(name, part, float(fill[j]), int(where.start) + j))
        for k, j in enumerate(flagged):
            self.imputed[start + j].indicator = int(where.start) + len(inputs) + k

    def _source(self, column: str) -> tuple[str, int]:
        if self.kinds.get(column) in ("numeric", "boolean"):
            return column, 0
        name, _, part = column.rpartition(".")
        if self.kinds.get(name) == "datetime" and part in DATETIME_PARTS:
            return name, DATETIME_PARTS.index(part)
        raise NotEncodableError(f"an imputer reads {column!r}, no numeric or boolean column")

    def _add_onehot(self, fitted: Any, inputs: list[str], where: slice) -> None:
        steps = getattr(fitted, "steps", None)
        encoder = steps[-1][1] if steps is not None and len(steps) == 1 else fitted
        if type(encoder).__name__ != "OneHotEncoder" or encoder.drop_idx_ is not None:
            raise NotEncodableError(f"unsupported transformer step {type(encoder).__name__}")
        if encoder.handle_unknown not in ("infrequent_if_exist", "ignore"):
            raise NotEncodableError("a one-hot encoder errors on unknown categories")
        infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(inputs)
        column = int(where.start)
        for name, categories, rare in zip(inputs, encoder.categories_, infrequent, strict=True):
            if self.kinds.get(name) != "categorical":
                raise NotEncodableError(f"one-hot column {name!r} is not categorical")
            rare_set = set() if rare is None else {str(c) for c in rare}
            lookup: dict[str, int] = {}
            for category in categories:
                if str(category) not in rare_set:
                    lookup[str(category)] = column
                    column += 1
            unknown = -1
            if rare_set:  # sklearn's order: frequent categories, then one "infrequent" column
                lookup.update(dict.fromkeys(rare_set, column))
                unknown = column if encoder.handle_unknown == "infrequent_if_exist" else -1
                column += 1
            self.onehots.append(_OneHot(name, lookup, unknown))
        if column != where.stop:
            raise NotEncodableError("a one-hot encoder's width does not match its categories")

    def _check_coverage(self) -> None:
        written = [i.dest for i in self.imputed] + [i.indicator for i in self.imputed]
        for onehot in self.onehots:
            written += sorted(set(onehot.lookup.values()) | {onehot.unknown})
        if sorted(c for c in written if c >= 0) != list(range(self.width)):
            raise NotEncodableError("the encoded columns do not cover the transformer's output")
        fed = {i.name for i in self.imputed} | {o.name for o in self.onehots}
        if fed != set(self.kinds):
            raise NotEncodableError("some feature columns feed no output column")


def _plain(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    return column


def _is_number(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


def _numeric(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Floats, NaN where missing; text goes through the reference's own coercion."""
    array = _plain(column)
    if _is_number(array.type) or pa.types.is_boolean(array.type):
        return np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    return as_numeric(pd.Series(array.to_pandas()))


def _boolean(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    array = _plain(column)
    if pa.types.is_boolean(array.type):
        return np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    return as_boolean(pd.Series(array.to_pandas()))


def _datetime(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Year, month, day of week and UTC hour per row, NaN where missing (or unparseable)."""
    array = _plain(column)
    if not pa.types.is_timestamp(array.type):
        return datetime_parts(pd.Series(array.to_pandas()))
    if array.type.tz is not None:
        array = array.cast(pa.timestamp(array.type.unit, tz="UTC")).cast(
            pa.timestamp(array.type.unit)
        )
    parts = [pc.year(array), pc.month(array), pc.day_of_week(array), pc.hour(array)]
    return np.column_stack(
        [np.asarray(p.cast(pa.float64()).to_numpy(zero_copy_only=False)) for p in parts]
    )


def _category_codes(column: pa.Array | pa.ChunkedArray, onehot: _OneHot) -> np.ndarray:
    """Each row's one-hot output column: labels coerced once per distinct value."""
    array = _plain(column)
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    encoded = pc.dictionary_encode(array)
    labels = [_label(value) for value in encoded.dictionary.to_pylist()]
    table = np.asarray([onehot.lookup.get(label, onehot.unknown) for label in labels] + [0])
    missing = onehot.lookup.get(MISSING, onehot.unknown)
    indices = encoded.indices.fill_null(len(labels)).to_numpy(zero_copy_only=False)
    codes = table[indices]
    codes[indices == len(labels)] = missing
    return np.asarray(codes, dtype=np.intp)


def _label(value: Any) -> str:
    return category_string(value)


def reference_kinds(model: Any) -> Mapping[str, str]:
    """The feature kinds of `model`'s signature, by column name."""
    return {str(f["name"]): str(f["kind"]) for f in model.signature["fields"]}

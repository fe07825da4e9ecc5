"""One fitted transformer from raw columns to the model's numeric matrix.

It travels inside the bundle, so training and serving transform identically. It follows
the scikit-learn estimator contract: ``__init__`` stores arguments, ``fit`` returns
``self``, learned state ends in ``_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlprod.errors import SchemaError
from mlprod.records import (
    DATETIME_PARTS,
    as_boolean,
    as_category,
    as_numeric,
    datetime_parts,
)

MAX_CATEGORIES = 30


class FeatureTransformer(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Raw columns (numeric, categorical, boolean, datetime) to a dense float matrix.

    Numeric and boolean values are imputed (median / most frequent) with missing-value
    indicators; categories are one-hot encoded, rare and unseen ones folded together;
    datetimes become their parts.

    Example::

        t = FeatureTransformer(kinds={"tenure": "numeric", "plan": "categorical"}).fit(df)
        X = t.transform(df)
    """

    def __init__(self, kinds: dict[str, str] | None = None) -> None:
        self.kinds = kinds

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureTransformer:
        self._fit(X)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> np.ndarray:
        """`fit(X).transform(X)`, coercing and encoding `X` once: fitting encodes it anyway."""
        return self._fit(X)

    def _fit(self, X: pd.DataFrame) -> np.ndarray:
        kinds = dict(self.kinds or {})
        if not kinds:
            raise SchemaError("FeatureTransformer needs at least one feature column")
        self.columns_ = list(kinds)
        frame = self._coerced(X)
        encoder = _column_transformer(kinds)
        encoded = np.asarray(encoder.fit_transform(frame), dtype=float)
        self.encoder_ = encoder
        self.feature_names_ = [str(name) for name in self.encoder_.get_feature_names_out()]
        self.n_features_out_ = len(self.feature_names_)
        return encoded

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.encoder_.transform(self._coerced(X)), dtype=float)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)

    def source_column(self, output_name: str) -> str:
        """The raw column an output column came from (to sum importances per column)."""
        rest = output_name.partition("__")[2].removeprefix("missingindicator_")
        for column in sorted(self.columns_, key=len, reverse=True):
            if rest == column or rest.startswith((column + "_", column + ".")):
                return column
        return rest

    def _coerced(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [column for column in self.columns_ if column not in X.columns]
        if missing:
            raise SchemaError(
                f"missing feature column(s) {missing}; the model was trained on {self.columns_}",
                fields=[{"field": column, "expected": "present"} for column in missing],
            )
        kinds = dict(self.kinds or {})
        data: dict[str, Any] = {}
        for column in self.columns_:
            values = X[column]
            kind = kinds[column]
            if kind == "numeric":
                data[column] = as_numeric(values)
            elif kind == "boolean":
                data[column] = as_boolean(values)
            elif kind == "categorical":
                data[column] = as_category(values)
            else:
                parts = datetime_parts(values)
                for i, part in enumerate(DATETIME_PARTS):
                    data[f"{column}.{part}"] = parts[:, i]
        return pd.DataFrame(data, index=range(len(X)))


def _column_transformer(kinds: dict[str, str]) -> ColumnTransformer:
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    numeric += [f"{c}.{p}" for c, k in kinds.items() if k == "datetime" for p in DATETIME_PARTS]
    boolean = [c for c, k in kinds.items() if k == "boolean"]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            (
                "num",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                numeric,
            )
        )
    if boolean:
        imputer = SimpleImputer(
            strategy="most_frequent", add_indicator=True, keep_empty_features=True
        )
        parts.append(("bool", imputer, boolean))
    if categorical:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=5,
            max_categories=MAX_CATEGORIES,
            sparse_output=False,
            dtype=np.float64,
        )
        parts.append(("cat", Pipeline([("onehot", encoder)]), categorical))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=True)

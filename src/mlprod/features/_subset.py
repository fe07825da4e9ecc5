"""Keeping a fixed subset of the transformed columns: the fitted form of a selection step.

It lives here, beside the feature transformer, because it travels in the bundle's
transformer file and skops may only build types from the packages the platform allows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class ColumnSubset(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Keep the columns at `indices` (positions in the input matrix), in that order.

    Example::

        ColumnSubset(indices=[0, 3], names=["age", "plan_basic"]).fit(X).transform(X)
    """

    def __init__(self, indices: list[int] | None = None, names: list[str] | None = None) -> None:
        self.indices = indices
        self.names = names

    def fit(self, X: Any, y: Any = None) -> ColumnSubset:
        self.indices_ = np.asarray(self.indices or [], dtype=np.intp)
        self.feature_names_ = list(self.names or [str(i) for i in self.indices_])
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float)[:, self.indices_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)

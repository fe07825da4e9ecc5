"""One record's row of the transformer's matrix, assembled in Python floats.

Why: for a single record (what a library caller's `predict_record` and most server
requests hold) the vectorised assembly is a dozen numpy calls on arrays of one row, each
costing more than the arithmetic it does. Here the same fitted state (imputer statistics,
missing indicators, one-hot columns) fills one Python list, turned into an array once.

Why it is safe: it takes the values the vectorised path would assemble (the same
converters read them, with the same checks), and the fast path serves single records with
it only after its parity check scored records and frames one at a time as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlprod.records._fastpath import _Plan

_INFINITE = (float("inf"), float("-inf"))


class RowBuilder:
    """Imputer inputs and one-hot columns of one record to its 1 x width float64 matrix.

    Example::

        rows = RowBuilder(plan)
        matrix = rows.matrix([12.0, float("nan"), 1.0], hot=[14, 19])  # None: an infinity
    """

    def __init__(self, plan: _Plan) -> None:
        self.width = int(plan.width)
        self._imputed = list(zip(map(float, plan.fill), map(int, plan.dest), strict=True))
        self._indicators = list(
            zip(map(int, plan.indicator_src), map(int, plan.indicator_dest), strict=True)
        )

    def matrix(self, values: Sequence[float], hot: Iterable[int]) -> np.ndarray | None:
        """`values`: the imputer inputs as floats (NaN: missing), in the plan's input order;
        `hot`: the one-hot output columns to set. None when a value is infinite (the
        transformer's imputer refuses it)."""
        row = [0.0] * self.width
        for value, (fill, dest) in zip(values, self._imputed, strict=True):
            if value != value:  # NaN: missing, the imputer's statistic
                row[dest] = fill
            elif value in _INFINITE:
                return None
            else:
                row[dest] = value
        for source, dest in self._indicators:
            if values[source] != values[source]:
                row[dest] = 1.0
        for column in hot:
            row[column] = 1.0
        return np.array([row], dtype=np.float64)

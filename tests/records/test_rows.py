"""One record's row, assembled in Python floats, against the vectorised assembly it replaces."""

from __future__ import annotations

import numpy as np

from mlprod.records._fastpath import _Plan
from mlprod.records._rows import RowBuilder


def _plan() -> _Plan:
    """Three imputed inputs (two with indicators) in columns 0-2, indicators in 3-4, and
    one-hot columns 5-8."""
    return _Plan(
        names=("a", "b", "c"),
        width=9,
        inputs=[(0, 0), (1, 0), (2, 0)],
        fill=[1.5, -2.0, 0.25],
        dest=[0, 1, 2],
        indicator_src=[0, 2],
        indicator_dest=[3, 4],
    )


def _vectorised(plan: _Plan, values: list[float], hot: list[int]) -> np.ndarray:
    """What `FastPath.encode` does for a batch, for one row."""
    raw = np.array([values], dtype=float)
    missing = np.isnan(raw)
    out = np.zeros((1, plan.width))
    out[:, plan.dest] = np.where(missing, np.asarray(plan.fill), raw)
    out[:, plan.indicator_dest] = missing[:, plan.indicator_src]
    out.reshape(-1)[hot] = 1.0
    return out


def test_a_row_is_the_vectorised_assembly_bit_for_bit(rng: np.random.Generator) -> None:
    plan, nan = _plan(), float("nan")
    builder = RowBuilder(plan)
    cases = [[0.0, -0.0, 1e300], [nan, nan, nan], [3.25, nan, -7.0], [2.0**60, 1e-310, nan]]
    cases += [list(rng.normal(size=3) * 1e6) for _ in range(50)]
    for values in cases:
        hot = [
            int(c) for c in rng.choice([5, 6, 7, 8], size=int(rng.integers(0, 4)), replace=False)
        ]
        got = builder.matrix(values, hot)
        expected = _vectorised(plan, values, hot)
        assert got is not None and got.dtype == np.float64 and got.shape == (1, 9)
        assert got.tobytes() == expected.tobytes(), values  # -0.0 stays -0.0


def test_missing_values_take_the_fill_and_set_their_indicator() -> None:
    got = RowBuilder(_plan()).matrix([float("nan"), 4.0, float("nan")], [6])
    assert got is not None
    assert got.tolist() == [[1.5, 4.0, 0.25, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]]


def test_an_infinite_value_is_refused_as_the_imputer_refuses_it() -> None:
    builder = RowBuilder(_plan())
    assert builder.matrix([1.0, float("inf"), 2.0], []) is None
    assert builder.matrix([1.0, 2.0, float("-inf")], [5]) is None
    assert builder.matrix([1.0, 2.0, 3.0], [5]) is not None  # the sibling: finite passes

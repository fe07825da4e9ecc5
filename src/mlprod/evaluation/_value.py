"""Business value: what a model's decisions are worth under the spec's ``value:`` matrix.

Each row's decision is one of tp, fp, tn, fn; its worth is that cell of the matrix, so the
value of a set of rows is a sum, and its bootstrap interval is the same weighted sum over
the resample counts the other metrics use. Live windows add their outcome counts the same
way (`value_of_counts`), so offline and live figures mean the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mlprod.evaluation._metrics import (
    MetricValue,
    _bootstrap_counts,
    _interval,
    check_binary_inputs,
)

CELLS = ("tp", "fp", "tn", "fn")


def value_of_counts(counts: Mapping[str, float], matrix: Mapping[str, float]) -> float:
    """Sum over outcomes of count x worth; outcomes missing from `counts` count 0.

    >>> value_of_counts({"tp": 3, "fp": 5, "tn": 90, "fn": 2}, {"tp": 90, "fp": -10})
    220.0
    """
    return float(sum(float(counts.get(c, 0)) * float(matrix.get(c, 0.0)) for c in CELLS))


def _row_values(y: np.ndarray, predicted: np.ndarray, matrix: Mapping[str, float]) -> np.ndarray:
    worth = {c: float(matrix.get(c, 0.0)) for c in CELLS}
    return np.where(
        y == 1,
        np.where(predicted, worth["tp"], worth["fn"]),
        np.where(predicted, worth["fp"], worth["tn"]),
    )


def business_value(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    matrix: Mapping[str, float],
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, MetricValue]:
    """Total value and value per row at `threshold`, each with a 95% bootstrap interval.

    >>> import numpy as np
    >>> v = business_value(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.4]), 0.5,
    ...                    {"tp": 10, "fp": -1, "tn": 0, "fn": -5})
    >>> v["value"].value, v["value_per_row"].value
    (5.0, 1.6666666666666667)
    """
    y, s = check_binary_inputs(y_true, scores, "business value")
    per_row = _row_values(y, s >= threshold, matrix)
    totals = np.concatenate(
        [counts @ per_row for counts in _bootstrap_counts(y.size, n_boot, seed)]
    )
    low, high = _interval(totals)
    n = max(y.size, 1)
    total = float(per_row.sum())
    return {
        "value": MetricValue(value=total, low=low, high=high),
        "value_per_row": MetricValue(value=total / n, low=low / n, high=high / n),
    }


def value_threshold(y: np.ndarray, scores: np.ndarray, matrix: Mapping[str, float]) -> float:
    """The score threshold (one of the scores) with the most value on these rows.

    Rows are positive when score >= threshold. Of thresholds tied on value it takes the
    highest, which flags the fewest rows for the same worth.
    """
    order = np.argsort(-scores, kind="mergesort")
    s, positive = scores[order], y[order].astype(np.float64)
    tp = np.cumsum(positive)
    fp = np.cumsum(1.0 - positive)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold flags every row tied with it
    tp, fp, candidates = tp[last], fp[last], s[last]
    positives, negatives = positive.sum(), len(positive) - positive.sum()
    worth = {c: float(matrix.get(c, 0.0)) for c in CELLS}
    value = (
        tp * worth["tp"]
        + fp * worth["fp"]
        + (negatives - fp) * worth["tn"]
        + (positives - tp) * worth["fn"]
    )
    best = np.flatnonzero(value == value.max())
    return float(candidates[best[0]])  # descending scores: the first is the highest

"""The decision threshold, chosen by a policy on validation data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

from mlprod.errors import SpecError, TrainingError
from mlprod.evaluation._metrics import check_binary_inputs
from mlprod.evaluation._value import value_threshold

Policy = Literal["max_f1", "min_precision", "min_recall", "max_value"]
_POLICIES = ("max_f1", "min_precision", "min_recall", "max_value")


def _curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at each distinct score used as a threshold (ascending)."""
    from sklearn.metrics import precision_recall_curve  # lazy: sklearn is slow to import

    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last point (precision 1, recall 0) has no threshold of its own.
    return precision[:-1], recall[:-1], thresholds


def choose_threshold(
    y_true: np.ndarray,
    scores: np.ndarray,
    policy: Policy,
    value: float | None = None,
    matrix: Mapping[str, float] | None = None,
) -> float:
    """Pick the score threshold (a row is positive when score >= it) by `policy`.

    Call this on VALIDATION data, never on the test set: a threshold tuned on the test
    set makes the test metrics optimistic. The result is always one of the scores.

    - ``max_f1``: the threshold with the highest F1.
    - ``min_precision``: the most recall whose precision is >= `value`, i.e. the lowest
      such threshold; of thresholds tied on that recall it takes the highest, which
      flags fewer negatives for the same positives.
    - ``min_recall``: the highest threshold whose recall is >= `value`.
    - ``max_value``: the threshold with the most business value under `matrix` (the
      spec's ``value:`` worth of tp, fp, tn and fn).

    Raises TrainingError when the constraint cannot be met, naming the best achievable.

    >>> import numpy as np
    >>> choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), "max_f1")
    0.4
    """
    if policy not in _POLICIES:
        raise SpecError(f"threshold policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    target: float | None = None
    if policy == "max_value":
        if not matrix:
            raise SpecError(
                "threshold policy max_value needs a value: matrix in mlprod.yaml, "
                "e.g. value: {tp: 90, fp: -10, tn: 0, fn: 0}"
            )
        y, s = check_binary_inputs(y_true, scores, "choosing a threshold")
        return value_threshold(y, s, matrix)
    if policy != "max_f1":
        if value is None:
            raise SpecError(f"threshold policy {policy!r} needs a value, e.g. value: 0.8")
        target = float(value)
    y, s = check_binary_inputs(y_true, scores, "choosing a threshold")
    if not y.any():
        raise TrainingError(
            f"choosing a threshold needs at least one positive row in the validation data, "
            f"got 0 of {y.size}; use a larger or stratified validation split"
        )
    precision, recall, thresholds = _curve(y, s)
    if target is None:
        f1 = np.zeros_like(precision)
        total = precision + recall
        np.divide(2 * precision * recall, total, out=f1, where=total > 0)
        return float(thresholds[int(np.argmax(f1))])
    return _constrained(policy, target, precision, recall, thresholds)


def _constrained(
    policy: Policy, target: float, precision: np.ndarray, recall: np.ndarray, thresholds: np.ndarray
) -> float:
    """The threshold meeting a precision or recall floor, or an error naming the best."""
    what = "precision" if policy == "min_precision" else "recall"
    achieved = precision if policy == "min_precision" else recall
    ok = np.flatnonzero(achieved >= target)
    if ok.size == 0:
        raise TrainingError(
            f"threshold policy {policy} with value {target:g} cannot be met on the validation "
            f"data: the best achievable {what} is {achieved.max():.4g}; lower threshold.value "
            "in mlprod.yaml or improve the model"
        )
    if policy == "min_recall":
        return float(thresholds[ok[-1]])  # thresholds ascend: the last is the highest
    # Most recall; among equal recall the highest threshold, whose precision is higher.
    best = ok[recall[ok] == recall[ok].max()]
    return float(thresholds[best[-1]])

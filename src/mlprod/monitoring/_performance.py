"""Live performance from window counts: realized from labels, estimated from scores.

Realized figures come from confusion counts of predictions joined to their outcomes,
with Wilson 95% intervals for rates and the Hanley-McNeil interval for ROC AUC (computed
from scores binned in equal steps of log-odds, fine near 0 and 1 where imbalanced tables
put most scores, so it agrees with the exact AUC to about 0.001: only pairs in one bin
count as ties). Before labels arrive, confidence-based performance estimation (CBPE)
reads the same figures off calibrated scores: a prediction with calibrated P(+) = 0.8
is expected to be a true positive 80% of the time. Both return the same keys, so a series
can switch from estimated to realized as labels arrive.

A multiclass version's figures (`class_performance`) are accuracy, each class's precision
and recall and macro F1, realized from its confusion matrix; before labels arrive only
accuracy can be estimated (`estimated_accuracy`): the calibration maps the top-class
probability to the chance the answer is right.

Example::

    realized_performance(tp=40, fp=10, fn=20, tn=130, pos_hist=pos, neg_hist=neg)
    estimated_performance(predicted_positive=210, est_tp=150.2, est_positive=230.8,
                          score_hist=hist, calibrate=binner.calibrated)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from mlprod.monitoring._reference import score_bin_middles

Z = 1.959963984540054  # two-sided 95%


def wilson(successes: float, trials: float) -> tuple[float | None, float | None, float | None]:
    """A rate with its Wilson 95% interval; (None, None, None) without trials."""
    if trials <= 0:
        return None, None, None
    rate = successes / trials
    denominator = 1 + Z**2 / trials
    centre = (rate + Z**2 / (2 * trials)) / denominator
    spread = Z * math.sqrt(rate * (1 - rate) / trials + Z**2 / (4 * trials**2)) / denominator
    return rate, max(0.0, centre - spread), min(1.0, centre + spread)


def auc_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """ROC AUC from scores binned alike for each class (ties within a bin count half)."""
    p_total, n_total = float(positives.sum()), float(negatives.sum())
    if p_total <= 0 or n_total <= 0:
        return None
    negatives_below = np.concatenate([[0.0], np.cumsum(negatives)[:-1]])
    wins = float(np.sum(positives * negatives_below) + 0.5 * np.sum(positives * negatives))
    return wins / (p_total * n_total)


def hanley_mcneil(auc: float, positives: float, negatives: float) -> tuple[float, float]:
    """The 95% interval of an AUC from the Hanley-McNeil standard error."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / max(positives * negatives, 1.0)
    spread = Z * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - spread), min(1.0, auc + spread)


def average_precision_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """Average precision, taking each score bin as one threshold, from the top down."""
    total = float(positives.sum())
    if total <= 0:
        return None
    tp = np.cumsum(positives[::-1])
    fp = np.cumsum(negatives[::-1])
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp, dtype=float), where=(tp + fp) > 0)
    recall_step = positives[::-1] / total
    return float(np.sum(precision * recall_step))


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None or precision + recall == 0:
        return None
    return 2 * precision * recall / (precision + recall)


def _figures(
    tp: float, fp: float, fn: float, positives: np.ndarray, negatives: np.ndarray
) -> dict[str, float | None]:
    precision = wilson(tp, tp + fp)
    recall = wilson(tp, tp + fn)
    auc = auc_from_histograms(positives, negatives)
    auc_low, auc_high = (None, None)
    if auc is not None:
        auc_low, auc_high = hanley_mcneil(auc, float(positives.sum()), float(negatives.sum()))
    return {
        "precision": precision[0],
        "precision_low": precision[1],
        "precision_high": precision[2],
        "recall": recall[0],
        "recall_low": recall[1],
        "recall_high": recall[2],
        "f1": _f1(precision[0], recall[0]),
        "roc_auc": auc,
        "roc_auc_low": auc_low,
        "roc_auc_high": auc_high,
        "average_precision": average_precision_from_histograms(positives, negatives),
    }


def realized_performance(
    *, tp: int, fp: int, fn: int, tn: int, pos_hist: np.ndarray, neg_hist: np.ndarray
) -> dict[str, float | None]:
    """Precision, recall, F1, ROC AUC and AP of labelled predictions, with 95% intervals."""
    figures = _figures(tp, fp, fn, np.asarray(pos_hist, float), np.asarray(neg_hist, float))
    return {**figures, "n_labelled": tp + fp + fn + tn}


def estimated_performance(
    *,
    predicted_positive: int,
    est_tp: float,
    est_positive: float,
    score_hist: np.ndarray,
    calibrate: Callable[[np.ndarray], np.ndarray],
) -> dict[str, float | None]:
    """The same figures expected from calibrated scores (CBPE), for unlabelled windows.

    Intervals treat the expected counts as observed ones: they show the sampling noise of
    the window, not the error of the calibration itself.
    """
    hist = np.asarray(score_hist, dtype=float)
    middles = score_bin_middles(len(hist))
    probability = calibrate(middles)
    positives, negatives = hist * probability, hist * (1 - probability)
    est_fp = predicted_positive - est_tp
    est_fn = est_positive - est_tp
    figures = _figures(est_tp, max(est_fp, 0.0), max(est_fn, 0.0), positives, negatives)
    return {**figures, "n_labelled": 0}


# --- multiclass: right or wrong answers, and per class from the confusion matrix

F1_RESAMPLES = 400  # about 0.5 ms a window; a year of daily windows costs 0.2 s
F1_SEED = 20261203  # fixed: the same counts always give the same interval


def class_performance(
    confusion: np.ndarray, names: Sequence[str], *, right: int, labelled: int
) -> dict[str, float | None]:
    """Accuracy, per-class precision and recall (Wilson 95%) and macro F1, realized.

    `confusion` is k x k (row: observed class, column: predicted), `right` and `labelled`
    the window's right answers and labelled predictions (answers without a class count as
    wrong, and have no cell). Macro F1 is scikit-learn's with every class and
    ``zero_division=0``, as the test metric; its interval comes from resampling the
    matrix's cells (multinomial, `F1_RESAMPLES` draws, a fixed seed).
    """
    matrix = np.asarray(confusion, dtype=float).reshape(len(names), len(names))
    accuracy = wilson(right, labelled)
    figures: dict[str, float | None] = {
        "accuracy": accuracy[0],
        "accuracy_low": accuracy[1],
        "accuracy_high": accuracy[2],
    }
    hits, observed, said = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    for i, name in enumerate(names):
        for metric, trials in (("precision", said[i]), ("recall", observed[i])):
            value, low, high = wilson(float(hits[i]), float(trials))
            key = f"{metric}[{name}]"
            figures.update({key: value, f"{key}_low": low, f"{key}_high": high})
    macro, low, high = _macro_f1(matrix)
    figures.update(macro_f1=macro, macro_f1_low=low, macro_f1_high=high)
    return figures


def _f1_per_class(matrices: np.ndarray) -> np.ndarray:
    """F1 of each class of each k x k matrix in a stack (0 where it has no row at all)."""
    hits = np.diagonal(matrices, axis1=-2, axis2=-1)
    both = matrices.sum(axis=-1) + matrices.sum(axis=-2)
    f1: np.ndarray = np.divide(2 * hits, both, out=np.zeros_like(hits), where=both > 0)
    return f1


def _macro_f1(matrix: np.ndarray) -> tuple[float | None, float | None, float | None]:
    total = int(matrix.sum())
    if total == 0:
        return None, None, None
    point = float(_f1_per_class(matrix).mean())
    rng = np.random.default_rng(F1_SEED)
    draws = rng.multinomial(total, matrix.ravel() / total, size=F1_RESAMPLES)
    stack = draws.reshape(F1_RESAMPLES, *matrix.shape).astype(float)
    low, high = np.quantile(_f1_per_class(stack).mean(axis=1), [0.025, 0.975])
    return point, float(low), float(high)


def estimated_accuracy(*, est_right: float, predictions: int) -> dict[str, float | None]:
    """Accuracy expected from calibrated top-class probabilities (CBPE), unlabelled.

    `est_right` sums P(the answer is right) over the answers; as for the binary estimate
    the interval treats the expected count as an observed one.
    """
    accuracy = wilson(est_right, predictions)
    return {"accuracy": accuracy[0], "accuracy_low": accuracy[1], "accuracy_high": accuracy[2]}

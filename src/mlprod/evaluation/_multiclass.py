"""Test-set metrics of a multiclass classifier, with bootstrap intervals.

The same scheme as the binary metrics: a resample is a row of counts, every metric is a
weighted sum over rows, and the point value (every count one) equals scikit-learn's on
the same predictions. The predicted label is the class with the highest probability.
Per-class metrics are keyed ``precision[CLASS]`` and ``recall[CLASS]`` (the class as its
text), which is also how a gate names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlprod.errors import TrainingError
from mlprod.evaluation._metrics import (
    _EPS,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    MetricValue,
    _bootstrap_counts,
    _interval,
    _ranking,
    _ratio,
    _Rows,
)

MULTICLASS_METRIC_NAMES = ("accuracy", "macro_f1", "weighted_f1", "roc_auc", "log_loss")


def class_key(metric: str, label: Any) -> str:
    """``recall[fraud]``: how a per-class metric is keyed and named in a gate."""
    return f"{metric}[{label}]"


def check_multiclass_inputs(
    y_true: object, proba: object, classes: Sequence[Any], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Labels coded 0..k-1 and an n x k matrix of finite probabilities; as arrays."""
    y = np.asarray(y_true).ravel()
    p = np.asarray(proba, dtype=np.float64)
    k = len(classes)
    if p.ndim != 2 or p.shape != (y.size, k):
        raise TrainingError(
            f"{what} needs one row of {k} class probabilities per label: got labels "
            f"{y.size} and scores of shape {p.shape}; pass predict_proba(X) for the same rows"
        )
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0.0 or p.max(initial=0.0) > 1.0:
        raise TrainingError(
            f"{what} needs probabilities in [0, 1]; the model produced others (NaN, inf or "
            "out of range), check its inputs"
        )
    if not np.isin(y, np.arange(k)).all():
        raise TrainingError(
            f"{what} needs labels coded 0..{k - 1} (positions in the classes), got values "
            f"such as {np.unique(y)[:5].tolist()}"
        )
    missing = [str(classes[c]) for c in range(k) if not np.any(y == c)]
    if missing:
        raise TrainingError(
            f"{what} needs every class in y_true; class(es) {', '.join(missing)} have no row "
            "in the test set; use a larger or stratified test split"
        )
    return y.astype(np.int64), p


def _class_rows(y: np.ndarray, p: np.ndarray, c: int) -> tuple[_Rows, np.ndarray]:
    """Class `c` one-vs-rest, sorted by its probability, and the sort order."""
    order = np.argsort(-p[:, c], kind="mergesort")
    s = p[order, c]
    new_value = np.empty(s.size, dtype=bool)
    new_value[:1] = True
    new_value[1:] = s[1:] != s[:-1]
    empty = np.empty(0)
    rows = _Rows(
        positive=(y[order] == c).astype(np.float64),
        score=s,
        predicted=empty,
        log_loss=empty,
        brier=empty,
        starts=np.flatnonzero(new_value),
    )
    return rows, order


def _metrics(
    y: np.ndarray, p: np.ndarray, labels: Sequence[str], w: np.ndarray
) -> dict[str, np.ndarray]:
    """Every multiclass metric for each row of counts `w` (resamples x rows)."""
    k = p.shape[1]
    predicted = np.argmax(p, axis=1)
    n = w.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    f1s, supports, aucs = [], [], []
    correct = np.zeros(w.shape[0])
    for c in range(k):
        is_c, said_c = (y == c).astype(np.float64), (predicted == c).astype(np.float64)
        tp, actual, said = w @ (is_c * said_c), w @ is_c, w @ said_c
        correct += tp
        out[class_key("precision", labels[c])] = _ratio(tp, said, 0.0)
        out[class_key("recall", labels[c])] = _ratio(tp, actual, 0.0)
        f1s.append(_ratio(2 * tp, said + actual, 0.0))
        supports.append(actual)
        rows, order = _class_rows(y, p, c)
        aucs.append(_ranking(rows, w[:, order])[0])
    chosen = np.clip(p[np.arange(y.size), y], _EPS, 1 - _EPS)
    out["accuracy"] = correct / n
    out["macro_f1"] = np.mean(f1s, axis=0)
    out["weighted_f1"] = np.sum(np.array(f1s) * np.array(supports), axis=0) / n
    out["roc_auc"] = np.mean(aucs, axis=0)  # NaN when a resample lacks a class: skipped
    out["log_loss"] = (w @ -np.log(chosen)) / n
    return out


def evaluate_multiclass(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Any],
    *,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, MetricValue]:
    """Score a multiclass classifier on held-out data, each metric with a 95% interval.

    `y_true` holds positions in `classes` (0..k-1) and `proba` the n x k class
    probabilities in that order. Returns accuracy, macro_f1, weighted_f1, roc_auc (macro
    one-vs-rest), log_loss and ``precision[CLASS]`` / ``recall[CLASS]`` for every class.
    Intervals use the same resamples and seed as the binary `evaluate`, so a gate's verdict
    is the same wherever it is checked. Point values equal scikit-learn's with
    ``labels=range(k)`` and ``zero_division=0``.

    >>> import numpy as np
    >>> proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    >>> m = evaluate_multiclass(np.array([0, 1, 2, 1]), proba, ["a", "b", "c"])
    >>> m["accuracy"].value, m["recall[b]"].value
    (0.75, 0.5)
    """
    if n_boot < 1:
        raise TrainingError(
            f"n_boot must be at least 1, got {n_boot}; the default is {BOOTSTRAP_RESAMPLES}"
        )
    y, p = check_multiclass_inputs(y_true, proba, classes, "evaluation")
    labels = [str(c) for c in classes]
    points = _metrics(y, p, labels, np.ones((1, y.size)))
    batches = [_metrics(y, p, labels, counts) for counts in _bootstrap_counts(y.size, n_boot, seed)]
    result: dict[str, MetricValue] = {}
    for name in [*MULTICLASS_METRIC_NAMES, *(n for n in points if "[" in n)]:
        low, high = _interval(np.concatenate([b[name] for b in batches]))
        result[name] = MetricValue(value=float(points[name][0]), low=low, high=high)
    return result

"""Training curves: validation loss and metric as a model grows, round by round.

Computed after fitting, from the fitted model alone (boosters predict with their first
``i`` rounds, forests average their first ``i`` trees), so recording a curve never
changes the model. At most `MAX_POINTS` evenly spaced points per curve keep records small.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import log_loss

from mlprod.training._fit import selection_score

MAX_POINTS = 60


def _points(total: int) -> list[int]:
    if total <= 0:
        return []
    return sorted({int(i) for i in np.linspace(1, total, min(total, MAX_POINTS)).round()})


def _staged(estimator: Any, X: np.ndarray) -> tuple[str, list[int], list[np.ndarray]] | None:
    """(x-axis label, sizes, P(positive) at each size) for models that grow in steps."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    module = type(final).__module__
    if module.startswith("lightgbm"):
        sizes = _points(int(final.booster_.current_iteration()))
        return "round", sizes, [final.predict_proba(X, num_iteration=i)[:, 1] for i in sizes]
    if module.startswith("xgboost"):
        sizes = _points(int(final.get_booster().num_boosted_rounds()))
        proba = [final.predict_proba(X, iteration_range=(0, i))[:, 1] for i in sizes]
        return "round", sizes, proba
    if hasattr(final, "staged_predict_proba"):
        sizes = _points(int(getattr(final, "n_iter_", 0)))
        wanted = set(sizes)
        staged = [p[:, 1] for i, p in enumerate(final.staged_predict_proba(X), 1) if i in wanted]
        return "iteration", sizes, staged
    if hasattr(final, "estimators_") and type(final).__name__ == "RandomForestClassifier":
        trees = np.column_stack([tree.predict_proba(X)[:, 1] for tree in final.estimators_])
        totals = np.cumsum(trees, axis=1)
        sizes = _points(trees.shape[1])
        return "trees", sizes, [totals[:, i - 1] / i for i in sizes]
    return None


def learning_curve(
    estimator: Any, X: np.ndarray, y: np.ndarray, metric: str
) -> dict[str, Any] | None:
    """Validation log loss and `metric` at each size of a fitted model, or None.

    None for models that do not grow in rounds (logistic regression, ensembles). A network
    returns the epochs it recorded while training, with their telemetry.

    Example::

        curve = learning_curve(lgbm, X_val, y_val, "roc_auc")
        curve["x"][-1], curve["loss"][-1]
    """
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if callable(getattr(final, "telemetry_curve", None)):  # a network: its epochs
        return dict(final.telemetry_curve())
    staged = _staged(estimator, X)
    if staged is None:
        return None
    label, sizes, probas = staged
    loss, scores = [], []
    for proba in probas:
        clipped = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
        loss.append(round(float(log_loss(y, clipped, labels=[0, 1])), 6))
        scores.append(round(selection_score(metric, y, clipped), 6))
    return {
        "x_label": label,
        "x": sizes,
        "loss_name": "log_loss",
        "loss": loss,
        "metric_name": metric,
        "metric": scores,
    }

"""Training curves: validation loss and metric as a model grows, round by round.

Computed after fitting, from the fitted model alone (boosters predict with their first
``i`` rounds, forests average their first ``i`` trees), so recording a curve never
changes the model. At most `MAX_POINTS` evenly spaced points per curve keep records small.

Boosters are read in one pass: each point adds the raw scores of the rounds since the
previous point, so a curve costs about one prediction instead of one per point (asking
for "the first i rounds" at 60 points re-scored the first trees 60 times: 42% of a
one-candidate `mlprod train`). LightGBM's trees are read once more cheaply still: one
prediction of every row's leaf in every tree, then the leaves' values summed in the
order LightGBM's own prediction sums them, so each point is the number a ranged
prediction gives (LightGBM's per-row cost, paid per call, made 60 ranged calls cost twice
one full prediction). The last point must match the model's own `predict_proba` to 1e-5
(XGBoost adds margins in float32), or the curve is computed the slow, obvious way; a
wrong sum would be off by far more. A caller that already has the model's scores on
these rows passes them, and they are not predicted again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from mlprod.training._fit import selection_score

MAX_POINTS = 60
_LEAF_CELLS = 2_000_000  # rows x trees per leaf prediction: bounds the memory it takes


def _points(total: int) -> list[int]:
    if total <= 0:
        return []
    return sorted({int(i) for i in np.linspace(1, total, min(total, MAX_POINTS)).round()})


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-margin)))


def _checked(
    probas: list[np.ndarray],
    final: Any,
    X: np.ndarray,
    slow: Callable[[], list[np.ndarray]],
    scores: np.ndarray | None = None,
) -> list[np.ndarray]:
    """`probas` when its last point is the model's own answer to 1e-5, else `slow()`.

    `scores` is that answer when the caller already has it (P(positive) on `X`).
    """
    exact = final.predict_proba(X)[:, 1] if scores is None else np.asarray(scores, dtype=float)
    fits = bool(probas) and probas[-1].shape == exact.shape
    if fits and np.allclose(probas[-1], exact, rtol=0.0, atol=1e-5):
        return [*probas[:-1], exact]
    return slow()


def _leaf_values(booster: Any, trees: int) -> np.ndarray | None:
    """Every tree's leaf values (trees x most leaves), or None if leaves are not constants.

    The model's text holds each value to 17 significant digits, so it reads back exact.
    """
    text = booster.model_to_string(num_iteration=trees)
    if booster.num_model_per_iteration() != 1 or "is_linear=1" in text:
        return None
    rows = [line.split() for line in re.findall(r"^leaf_value=(.*)$", text, flags=re.MULTILINE)]
    if len(rows) != trees:
        return None
    values = np.zeros((trees, max(len(row) for row in rows)))
    for tree, row in enumerate(rows):
        values[tree, : len(row)] = np.array(row, dtype=float)
    return values


def _lightgbm_staged(final: Any, X: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """P(positive) after each size, summing leaf values as LightGBM does (tree by tree from
    0 within each stretch of rounds), so each point equals a ranged prediction."""
    booster = final.booster_
    values = _leaf_values(booster, sizes[-1]) if sizes else None
    if values is None:
        return _lightgbm_ranged(booster, X, sizes)
    margins = np.empty((len(sizes), len(X)))
    trees = np.arange(sizes[-1])[:, None]
    step = max(1, _LEAF_CELLS // sizes[-1])
    for start in range(0, len(X), step):
        leaves = booster.predict(X[start : start + step], pred_leaf=True, num_iteration=sizes[-1])
        outputs = values[trees, np.asarray(leaves, dtype=np.intp).T]  # trees x rows
        margin, done = np.zeros(outputs.shape[1]), 0
        for i, size in enumerate(sizes):
            stretch = outputs[done]
            for tree in range(done + 1, size):
                stretch = stretch + outputs[tree]
            margin = margin + stretch
            margins[i, start : start + step] = margin
            done = size
    return list(_sigmoid(margins))


def _lightgbm_ranged(booster: Any, X: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """The same points from one ranged prediction per stretch of rounds."""
    margin = np.zeros(len(X))
    probas, done = [], 0
    for size in sizes:
        margin = margin + booster.predict(
            X, raw_score=True, start_iteration=done, num_iteration=size - done
        )
        probas.append(_sigmoid(margin))
        done = size
    return probas


def _xgboost_staged(final: Any, X: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    import xgboost

    booster = final.get_booster()
    matrix = xgboost.DMatrix(X)

    def margin(start: int, stop: int) -> np.ndarray:
        return np.asarray(
            booster.predict(matrix, output_margin=True, iteration_range=(start, stop)), dtype=float
        )

    # Every ranged prediction carries the base score once: m(0,1) + m(1,2) - m(0,2) is it.
    base = margin(0, 1) + margin(1, 2) - margin(0, 2) if sizes[-1] >= 2 else 0.0
    total = np.zeros(len(X))
    probas, done = [], 0
    for size in sizes:
        total = total + margin(done, size) - (base if done else 0.0)
        probas.append(_sigmoid(total))
        done = size
    return probas


def _staged(
    estimator: Any, X: np.ndarray, scores: np.ndarray | None = None
) -> tuple[str, list[int], list[np.ndarray]] | None:
    """(x-axis label, sizes, P(positive) at each size) for models that grow in steps."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    module = type(final).__module__
    if module.startswith("lightgbm"):
        sizes = _points(int(final.booster_.current_iteration()))
        probas = _checked(
            _lightgbm_staged(final, X, sizes) if sizes else [],
            final,
            X,
            lambda: [final.predict_proba(X, num_iteration=i)[:, 1] for i in sizes],
            scores,
        )
        return "round", sizes, probas
    if module.startswith("xgboost"):
        sizes = _points(int(final.get_booster().num_boosted_rounds()))
        probas = _checked(
            _xgboost_staged(final, X, sizes) if sizes else [],
            final,
            X,
            lambda: [final.predict_proba(X, iteration_range=(0, i))[:, 1] for i in sizes],
            scores,
        )
        return "round", sizes, probas
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


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


def _curve_score(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    """`selection_score` without scikit-learn's per-call input checks (60 calls a curve)."""
    if metric == "log_loss":
        return -_log_loss(y, p)
    positive = y == 1
    positives = int(positive.sum())
    if metric != "roc_auc" or positives in (0, len(y)):
        return selection_score(metric, y, p)
    negatives = len(y) - positives
    if np.isnan(p).any():  # no order: NaN, as a rank sum with NaN ranks gives
        return float("nan")
    # The Mann-Whitney count: negatives scored below each positive, ties counted half. In
    # halves it is an integer, so it equals the rank-sum form (R - P(P+1)/2) exactly.
    below = np.sort(p[~positive])
    scored = p[positive]
    twice = int(
        np.searchsorted(below, scored, "left").sum() + np.searchsorted(below, scored, "right").sum()
    )
    return float(twice / 2 / (positives * negatives))


def learning_curve(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    metric: str,
    *,
    scores: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """Validation log loss and `metric` at each size of a fitted model, or None.

    None for models that do not grow in rounds (logistic regression, ensembles), and for
    boosters and forests on a multiclass target (their staged scores here are binary). A
    network returns the epochs it recorded while training, with their telemetry.
    `scores`, the model's P(positive) on `X` when the caller has it, saves predicting
    them again: a booster's curve ends on exactly those numbers.

    Example::

        curve = learning_curve(lgbm, X_val, y_val, "roc_auc")
        curve["x"][-1], curve["loss"][-1]
    """
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if callable(getattr(final, "telemetry_curve", None)):  # a network: its epochs
        return dict(final.telemetry_curve())
    if np.unique(np.asarray(y)).size > 2:
        return None
    staged = _staged(estimator, X, scores)
    if staged is None:
        return None
    label, sizes, probas = staged
    loss, measured = [], []
    y = np.asarray(y)
    for proba in probas:
        clipped = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
        loss.append(round(_log_loss(y, clipped), 6))
        measured.append(round(_curve_score(metric, y, clipped), 6))
    return {
        "x_label": label,
        "x": sizes,
        "loss_name": "log_loss",
        "loss": loss,
        "metric_name": metric,
        "metric": measured,
    }

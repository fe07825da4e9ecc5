"""Fitting the candidates and choosing the winner on validation data only.

With a holdout split each candidate is fitted on the training rows and scored on the
validation rows. With cross-validation each candidate is scored out of fold and the
winner is refitted on every training row. The test rows never reach this module.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import average_precision_score, f1_score, log_loss, roc_auc_score

from mlprod.errors import TrainingError
from mlprod.spec import CandidateSpec
from mlprod.training._catalogue import make_estimator

Progress = Callable[[str], None]
EpochSink = Callable[[str, dict[str, Any]], None]  # (candidate name, curve so far)


@dataclass
class CandidateResult:
    """One candidate's outcome; `estimator` is fitted.

    `validation_scores` are P(positive) for a binary target, the n x k class
    probabilities for a multiclass one (see `class_scores`).
    """

    name: str
    type: str
    params: dict[str, Any]
    validation_score: float = float("nan")
    fit_seconds: float = 0.0
    estimator: Any = None
    validation_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-able record of this candidate for the run."""
        return {
            "name": self.name,
            "type": self.type,
            "params": self.params,
            "validation_score": None if np.isnan(self.validation_score) else self.validation_score,
            "fit_seconds": round(self.fit_seconds, 3),
            "error": self.error,
        }


def class_scores(estimator: Any, X: np.ndarray) -> np.ndarray:
    """P(positive) per row for a binary model; the n x k probabilities for k > 2 classes."""
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    return proba[:, 1] if proba.shape[1] == 2 else proba


def selection_score(metric: str, y: np.ndarray, scores: np.ndarray) -> float:
    """The selection metric, oriented so that higher is better.

    Multiclass scores (n x k, `y` coded 0..k-1): roc_auc is the macro one-vs-rest AUC,
    average_precision the macro AP, log_loss the multiclass log loss; macro_f1 takes the
    most probable class (binary: score >= 0.5) as the label.
    """
    if scores.ndim == 2:
        return _multiclass_score(metric, y, scores)
    if metric == "macro_f1":
        return float(f1_score(y, scores >= 0.5, average="macro"))
    if metric == "roc_auc":
        return float(roc_auc_score(y, scores))
    if metric == "average_precision":
        return float(average_precision_score(y, scores))
    clipped = np.clip(scores, 1e-15, 1 - 1e-15)
    return -float(log_loss(y, clipped, labels=[0, 1]))


def _multiclass_score(metric: str, y: np.ndarray, proba: np.ndarray) -> float:
    labels = list(range(proba.shape[1]))
    if metric == "roc_auc":
        return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))
    if metric == "average_precision":
        onehot = (y[:, None] == np.arange(proba.shape[1])[None, :]).astype(int)
        return float(average_precision_score(onehot, proba, average="macro"))
    if metric == "macro_f1":
        predicted = np.argmax(proba, axis=1)
        return float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0))
    clipped = np.clip(proba, 1e-15, 1 - 1e-15)
    return -float(log_loss(y, clipped / clipped.sum(axis=1, keepdims=True), labels=labels))


def candidate_names(candidates: Sequence[CandidateSpec]) -> list[str]:
    """Unique names: the type, then ``lightgbm#2`` for a second candidate of a type."""
    seen: dict[str, int] = {}
    names = []
    for candidate in candidates:
        seen[candidate.type] = seen.get(candidate.type, 0) + 1
        count = seen[candidate.type]
        names.append(candidate.type if count == 1 else f"{candidate.type}#{count}")
    return names


def fit_holdout(
    candidates: Sequence[CandidateSpec],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    metric: str,
    seed: int,
    progress: Progress = lambda _: None,
    spark: tuple[str | None, int] | None = None,
    on_epoch: EpochSink | None = None,
) -> list[CandidateResult]:
    """Fit every candidate on the training rows, score each on the validation rows.

    With `spark` (master, workers), XGBoost candidates are fitted by XGBoost's Spark
    estimator instead (see `fit_xgboost_on_spark`). Candidates that train in epochs
    (``mlp``) hand `on_epoch` their curve after each one.
    """
    results = []
    for name, candidate in zip(candidate_names(candidates), candidates, strict=True):
        progress(f"fitting {name}")
        result = CandidateResult(name, candidate.type, dict(candidate.params))
        started = time.perf_counter()
        estimator = make_estimator(candidate.type, candidate.params, seed)
        try:
            if spark is not None and candidate.type == "xgboost":
                from mlprod.training._spark import fit_xgboost_on_spark

                progress(f"fitting {name} on Spark")
                estimator, _ = fit_xgboost_on_spark(
                    estimator, X_train, y_train, master=spark[0], workers=spark[1]
                )
            else:
                fit_model(estimator, X_train, y_train, name, on_epoch)
            scores = class_scores(estimator, X_val)
            result.validation_score = selection_score(metric, y_val, scores)
        except (ValueError, ArithmeticError, MemoryError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        else:
            result.estimator, result.validation_scores = estimator, scores
        result.fit_seconds = time.perf_counter() - started
        results.append(result)
    return results


def fit_model(
    estimator: Any, X: np.ndarray, y: np.ndarray, name: str, on_epoch: EpochSink | None
) -> Any:
    """`estimator.fit(X, y)`, passing an epoch callback to models that take one."""
    multiclass_metric(estimator, y)
    if on_epoch is not None and "on_epoch" in inspect.signature(estimator.fit).parameters:
        return estimator.fit(X, y, on_epoch=lambda curve: on_epoch(name, curve))
    return estimator.fit(X, y)


def multiclass_metric(estimator: Any, y: np.ndarray) -> None:
    """XGBoost's binary ``logloss`` eval metric becomes ``mlogloss`` for k > 2 classes."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    xgboost = type(final).__name__ == "XGBClassifier"
    if xgboost and final.get_params().get("eval_metric") == "logloss" and np.unique(y).size > 2:
        final.set_params(eval_metric="mlogloss")


def fit_cross_validated(
    candidates: Sequence[CandidateSpec],
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    metric: str,
    seed: int,
    progress: Progress = lambda _: None,
    on_epoch: EpochSink | None = None,
) -> list[CandidateResult]:
    """Score every candidate out of fold; `folds` index into `X`.

    Networks hand `on_epoch` each fold's curve as it grows (``mlp (fold 2/5)``).
    """
    results = []
    for name, candidate in zip(candidate_names(candidates), candidates, strict=True):
        result = CandidateResult(name, candidate.type, dict(candidate.params))
        started = time.perf_counter()
        template = make_estimator(candidate.type, candidate.params, seed)
        k = np.unique(y).size
        oof = np.full(len(y), np.nan) if k <= 2 else np.full((len(y), k), np.nan)
        try:
            for i, (fit_idx, val_idx) in enumerate(folds):
                progress(f"fitting {name}, fold {i + 1}/{len(folds)}")
                fold = f"{name} (fold {i + 1}/{len(folds)})"
                fold_model = fit_model(clone(template), X[fit_idx], y[fit_idx], fold, on_epoch)
                oof[val_idx] = class_scores(fold_model, X[val_idx])
            covered = ~np.isnan(oof) if oof.ndim == 1 else ~np.isnan(oof).any(axis=1)
            result.validation_score = selection_score(metric, y[covered], oof[covered])
        except (ValueError, ArithmeticError, MemoryError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        else:
            result.estimator, result.validation_scores = template, oof
        result.fit_seconds = time.perf_counter() - started
        results.append(result)
    return results


def pick_winner(results: Sequence[CandidateResult]) -> CandidateResult:
    """The candidate with the best validation score; errors never win."""
    ok = [r for r in results if r.error is None and not np.isnan(r.validation_score)]
    if not ok:
        errors = "; ".join(f"{r.name}: {r.error}" for r in results)
        raise TrainingError(f"no candidate could be trained ({errors}); check the data and params")
    return max(ok, key=lambda r: r.validation_score)


def feature_importance(
    estimator: Any,
    names: Sequence[str],
    source: Callable[[str], str],
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
) -> dict[str, float]:
    """Importance per raw column (summed over its encoded columns), normalised to sum 1.

    Native importances where the model has them (trees: gain or split share; linear:
    |coefficient| on standardised inputs), else permutation importance on (X, y), which
    should be validation data.
    """
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if hasattr(final, "feature_importances_"):
        raw = np.asarray(final.feature_importances_, dtype=float)
    elif hasattr(final, "coef_"):
        # multiclass: one row of coefficients per class, summed per column
        raw = np.abs(np.atleast_2d(np.asarray(final.coef_, dtype=float))).sum(axis=0)
    elif X is not None and y is not None:
        from sklearn.inspection import permutation_importance

        scoring = "roc_auc" if np.unique(y).size <= 2 else "neg_log_loss"
        found = permutation_importance(
            estimator, X, y, scoring=scoring, n_repeats=3, random_state=0
        )
        raw = np.clip(np.asarray(found.importances_mean, dtype=float), 0.0, None)
    else:
        return {}
    totals: dict[str, float] = {}
    for name, value in zip(names, raw, strict=True):
        column = source(name)
        totals[column] = totals.get(column, 0.0) + float(value)
    total = sum(totals.values()) or 1.0
    return dict(sorted(((k, v / total) for k, v in totals.items()), key=lambda kv: -kv[1]))

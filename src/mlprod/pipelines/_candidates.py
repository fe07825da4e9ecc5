"""After the candidates are fitted: the optional ensemble, and each one's training curve."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from mlprod.data import Split
from mlprod.pipelines._prepare import training_folds
from mlprod.spec import ProjectSpec
from mlprod.training import (
    CandidateResult,
    ensemble_cross_validated,
    ensemble_holdout,
    learning_curve,
)


def add_ensemble(
    spec: ProjectSpec, results: list[CandidateResult], X: np.ndarray, y: np.ndarray, split: Split
) -> list[CandidateResult]:
    """`results` plus the spec's ensemble, scored on validation data like the others."""
    if spec.ensemble is None:
        return results
    metric = spec.selection_metric
    if spec.split.method == "cv":
        train_idx, folds = training_folds(split)
        built = ensemble_cross_validated(spec.ensemble, results, y[train_idx], folds, metric=metric)
    else:
        built = ensemble_holdout(
            spec.ensemble,
            results,
            X[split.train],
            y[split.train],
            y[split.validation],
            metric=metric,
            seed=spec.seed,
        )
    return [*results, built] if built is not None else results


def candidate_curves(
    spec: ProjectSpec, results: list[CandidateResult], X: np.ndarray, y: np.ndarray, split: Split
) -> dict[str, dict[str, Any]]:
    """Validation loss and metric per round for every candidate that grows in rounds.

    Holdout: the fitted candidate on the validation rows (whose scores selection already
    has). Cross-validation: a copy fitted on the first fold's training part, measured on
    that fold's held-out part.
    """
    curves: dict[str, dict[str, Any]] = {}
    metric = spec.selection_metric
    for result in results:
        if result.error is not None or result.type == "ensemble" or result.estimator is None:
            continue
        if spec.split.method == "cv":
            train_idx, folds = training_folds(split)
            fit, val = train_idx[folds[0][0]], train_idx[folds[0][1]]
            model = clone(result.estimator).fit(X[fit], y[fit])
            curve = learning_curve(model, X[val], y[val], metric)
        else:
            scores = result.validation_scores
            curve = learning_curve(
                result.estimator,
                X[split.validation],
                y[split.validation],
                metric,
                scores=scores if scores.ndim == 1 and len(scores) else None,
            )
        if curve is not None:
            curves[result.name] = curve
    return curves

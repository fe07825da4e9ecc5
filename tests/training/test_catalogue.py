"""The catalogue: every algorithm fits with its defaults; bad params fail before training."""

from __future__ import annotations

import numpy as np
import pytest

from mlprod.errors import SpecError, TrainingError
from mlprod.spec import CATALOGUE, CandidateSpec
from mlprod.training import (
    feature_importance,
    fit_cross_validated,
    fit_holdout,
    make_estimator,
    pick_winner,
)


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(600, 5))
    logits = 2.0 * X[:, 0] - 1.5 * X[:, 1] + 0.5 * X[:, 0] * X[:, 2]
    y = (rng.random(600) < 1 / (1 + np.exp(-logits))).astype(int)
    return X, y


@pytest.mark.parametrize("kind", CATALOGUE)
def test_every_catalogue_entry_learns_the_signal(
    kind: str, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    results = fit_holdout(
        [CandidateSpec(type=kind)], X[:400], y[:400], X[400:], y[400:], metric="roc_auc", seed=1
    )
    assert results[0].error is None
    assert results[0].validation_score > 0.75
    importance = feature_importance(
        results[0].estimator, [f"x{i}" for i in range(5)], lambda n: n, X[400:], y[400:]
    )
    assert sum(importance.values()) == pytest.approx(1.0)
    assert max(importance, key=importance.__getitem__) in {"x0", "x1"}


def test_params_override_defaults_and_typos_are_named() -> None:
    assert make_estimator("lightgbm", {"num_leaves": 7}, seed=0).get_params()["num_leaves"] == 7
    assert make_estimator("logistic_regression", {"C": 0.1}, seed=0).steps[-1][1].C == 0.1
    with pytest.raises(SpecError, match="num_leafs"):
        make_estimator("lightgbm", {"num_leafs": 7}, seed=0)


def test_winner_is_best_on_validation_and_cv_scores_out_of_fold(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = data
    folds = [
        (np.arange(600)[np.arange(600) % 3 != k], np.arange(600)[np.arange(600) % 3 == k])
        for k in range(3)
    ]
    candidates = [
        CandidateSpec(type="logistic_regression"),
        CandidateSpec(type="lightgbm"),
        CandidateSpec(type="lightgbm", params={"n_estimators": 5}),
    ]
    results = fit_cross_validated(candidates, X, y, folds, metric="roc_auc", seed=0)
    assert [r.name for r in results] == ["logistic_regression", "lightgbm", "lightgbm#2"]
    assert all(not np.isnan(r.validation_scores).any() for r in results)
    assert pick_winner(results).validation_score == max(r.validation_score for r in results)


def test_no_trainable_candidate_is_a_clear_error(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    results = fit_holdout(
        [CandidateSpec(type="logistic_regression", params={"C": -1.0})],
        X[:400],
        y[:400],
        X[400:],
        y[400:],
        metric="roc_auc",
        seed=0,
    )
    assert results[0].error is not None
    with pytest.raises(TrainingError, match="no candidate could be trained"):
        pick_winner(results)

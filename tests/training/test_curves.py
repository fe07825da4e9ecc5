"""A LightGBM curve read from one leaf prediction equals one ranged prediction per stretch."""

from __future__ import annotations

import numpy as np
import pytest
from lightgbm import LGBMClassifier

from mlprod.training import _curves as curves
from mlprod.training import learning_curve, make_estimator


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(1500, 6))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take their own branch
    logits = 2.0 * np.nan_to_num(X[:, 0]) - 1.5 * np.nan_to_num(X[:, 1])
    y = (rng.random(1500) < 1 / (1 + np.exp(-logits))).astype(int)
    return X, y


@pytest.mark.parametrize("leaf_cells", [2_000_000, 1_000])  # one leaf prediction, or 17
def test_leaf_sums_equal_ranged_predictions_to_the_bit(
    data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch, leaf_cells: int
) -> None:
    """Every point, not just the last: the curve records all 60 of them."""
    monkeypatch.setattr(curves, "_LEAF_CELLS", leaf_cells)
    X, y = data
    model = make_estimator("lightgbm", {"n_estimators": 97}, seed=0).fit(X[:1000], y[:1000])
    sizes = curves._points(97)
    assert curves._leaf_values(model.booster_, 97) is not None  # the leaf path is taken
    by_leaves = curves._lightgbm_staged(model, X[1000:], sizes)
    ranged = curves._lightgbm_ranged(model.booster_, X[1000:], sizes)
    assert len(by_leaves) == len(ranged) == 60
    for size, got, expected in zip(sizes, by_leaves, ranged, strict=True):
        np.testing.assert_array_equal(got, expected, err_msg=str(size))
    final = model.predict_proba(X[1000:])[:, 1]
    assert np.abs(by_leaves[-1] - final).max() < 1e-12


def test_linear_trees_are_read_by_ranged_predictions(data: tuple[np.ndarray, np.ndarray]) -> None:
    """Leaves of linear trees are functions of the row: no table of values to sum."""
    X, y = data
    X = np.nan_to_num(X)
    model = LGBMClassifier(n_estimators=20, linear_tree=True, verbose=-1, random_state=0)
    model.fit(X[:1000], y[:1000])
    assert curves._leaf_values(model.booster_, 20) is None
    sizes = curves._points(20)
    staged = curves._lightgbm_staged(model, X[1000:], sizes)
    for size, proba in zip(sizes, staged, strict=True):
        expected = model.predict_proba(X[1000:], num_iteration=size)[:, 1]
        assert np.abs(proba - expected).max() < 1e-9, size


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_known_scores_give_the_curve_predicting_them_gives(
    kind: str, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    model = make_estimator(kind, {"n_estimators": 50}, seed=0).fit(X[:1000], y[:1000])
    scores = model.predict_proba(X[1000:])[:, 1]
    with_scores = learning_curve(model, X[1000:], y[1000:], "roc_auc", scores=scores)
    assert with_scores == learning_curve(model, X[1000:], y[1000:], "roc_auc")
    assert with_scores is not None and len(with_scores["x"]) == 50


def test_scores_from_another_model_fall_back_to_the_model_itself(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    """Scores that are not the model's answer cannot end its curve: the slow way decides."""
    X, y = data
    model = make_estimator("lightgbm", {"n_estimators": 30}, seed=0).fit(X[:1000], y[:1000])
    wrong = np.full(len(X) - 1000, 0.5)
    curve = learning_curve(model, X[1000:], y[1000:], "log_loss", scores=wrong)
    assert curve == learning_curve(model, X[1000:], y[1000:], "log_loss")


@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_curve_auc_is_the_rank_sum_statistic_to_the_bit(
    rng: np.random.Generator, decimals: int | None
) -> None:
    """Counting negatives below each positive gives scipy's rank-sum AUC exactly, ties too."""
    from scipy.stats import rankdata

    for n in (7, 300, 5_000):
        y = (rng.random(n) < 0.3).astype(int)
        y[:2] = [0, 1]
        p = np.clip(rng.random(n) * 1.2 - 0.1, 1e-15, 1 - 1e-15)
        p = p if decimals is None else np.round(p, decimals)
        positives, negatives = int(y.sum()), int(n - y.sum())
        ranks = rankdata(p)
        expected = (ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
        assert curves._curve_score("roc_auc", y, p) == float(expected), n
    p[0] = np.nan
    assert np.isnan(curves._curve_score("roc_auc", y, p))

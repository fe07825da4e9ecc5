"""The `svm` candidate: an RBF SVC whose probabilities come from a seeded calibration."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from mlprod.errors import SpecError
from mlprod.spec import CandidateSpec
from mlprod.training import make_estimator, search_space


def _rows(rng: np.random.Generator, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 4)) * [1.0, 1.0, 100.0, 0.01]  # scales the scaler must fix
    signal = X[:, 0] ** 2 + X[:, 1] - 1.0  # not linear: the kernel earns its place
    y = (signal + rng.normal(0, 0.5, n) > 0).astype(int)
    return X, y


def test_svm_probabilities_are_calibrated_and_rank_well(rng: np.random.Generator) -> None:
    X, y = _rows(rng)
    model = make_estimator("svm", {}, seed=0).fit(X[:400], y[:400])
    proba = model.predict_proba(X[400:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[:, 1].min() > 0 and proba[:, 1].max() < 1
    assert roc_auc_score(y[400:], proba[:, 1]) > 0.85
    # calibrated: the mean probability is close to the positive rate, and Brier beats 0.25
    assert abs(proba[:, 1].mean() - y[400:].mean()) < 0.07
    assert brier_score_loss(y[400:], proba[:, 1]) < 0.15


def test_svm_is_seeded_and_takes_the_svc_parameters(rng: np.random.Generator) -> None:
    X, y = _rows(rng, 300)
    first = make_estimator("svm", {"C": 3.0}, seed=1).fit(X, y).predict_proba(X)
    second = make_estimator("svm", {"C": 3.0}, seed=1).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    calibrated = make_estimator("svm", {"C": 3.0, "kernel": "linear"}, seed=1).steps[-1][1]
    assert (calibrated.estimator.C, calibrated.estimator.kernel) == (3.0, "linear")
    with pytest.raises(SpecError, match=r"unknown parameter\(s\) \['c_value'\] for svm"):
        make_estimator("svm", {"c_value": 1}, seed=0)


def test_svm_tunes_c_and_gamma_on_log_scales() -> None:
    space = search_space(CandidateSpec(type="svm"))
    assert set(space) == {"C", "gamma"} and space["C"].log and space["gamma"].log

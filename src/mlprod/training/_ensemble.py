"""Ensembles of the best candidates: soft voting or stacking, scored like any candidate.

An ensemble is kept only when it beats the best single model on validation data; ties
go to the single model, which is simpler to run and to explain. Stacking learns its
weights from out-of-fold scores on the training rows, never from the validation rows it
is then judged on. A multiclass ensemble combines the members' class probabilities
(voting: their mean; stacking: a multinomial logistic model over all of them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from mlprod.bundle import combine_scores
from mlprod.spec import EnsembleSpec
from mlprod.training._fit import CandidateResult, class_scores, selection_score

ENSEMBLE_FOLDS = 3


class Ensemble(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Fitted members and how their scores combine; saved member by member.

    `combiner` is plain data (``{"method": "voting"}`` or ``{"method": "stacking",
    "coef": [...], "intercept": b}``; multiclass stacking: a k x (m*k) coef and k
    intercepts), the same the bundle stores, so the saved model scores exactly as this one.
    """

    def __init__(
        self,
        members: list[Any] | None = None,
        names: list[str] | None = None,
        combiner: dict[str, Any] | None = None,
    ) -> None:
        self.members = members
        self.names = names
        self.combiner = combiner

    def fit(self, X: np.ndarray, y: np.ndarray) -> Ensemble:
        """Refit every member on (X, y); the combiner stays as learned."""
        self.members = [clone(member).fit(X, y) for member in self.members or []]
        self.classes_ = _coded_classes(int(np.unique(y).size))
        return self

    def member_scores(self, X: np.ndarray) -> np.ndarray:
        """One column of P(positive) per member (n x m); multiclass: n x m x k."""
        return _stacked([class_scores(m, X) for m in self.members or []])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        combined = combine_scores(self.combiner or {}, self.member_scores(X))
        if combined.ndim == 2:
            return combined
        return np.column_stack([1.0 - combined, combined])

    def predict(self, X: np.ndarray) -> np.ndarray:
        proba = self.predict_proba(X)
        if proba.shape[1] > 2:
            return np.asarray(np.argmax(proba, axis=1))
        return (proba[:, 1] >= 0.5).astype(int)


def _coded_classes(count: int) -> np.ndarray:
    """Labels reach training coded 0..k-1; two classes at least."""
    return np.arange(max(count, 2))


def _stacked(scores: Sequence[np.ndarray]) -> np.ndarray:
    """Members' scores side by side: n x m for P(positive), n x m x k for class probabilities."""
    return np.stack([np.asarray(s, dtype=float) for s in scores], axis=1)


def _stacker(scores: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The stacking combiner learned from members' scores (n x m, or n x m x k)."""
    if scores.ndim == 3:
        return _multinomial_stacker(scores, y)
    meta = LogisticRegression(C=1.0, max_iter=1000).fit(scores, y)
    return {
        "method": "stacking",
        "coef": [float(c) for c in meta.coef_.ravel()],
        "intercept": float(meta.intercept_[0]),
    }


def _multinomial_stacker(scores: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """A softmax over the members' n x (m*k) class probabilities: coef k x (m*k), k intercepts.

    `y` is coded 0..k-1; a class missing from these rows still gets its row of
    coefficients (zeros, and an intercept that makes it unlikely), so the shape is k x (m*k).
    """
    rows, members, classes = scores.shape
    features = scores.reshape(rows, members * classes)
    meta = LogisticRegression(C=1.0, max_iter=1000).fit(features, y)
    coef = np.zeros((classes, members * classes))
    intercept = np.full(classes, -30.0)
    seen = np.asarray(meta.classes_, dtype=int)
    if len(seen) == 2:  # sklearn's one logit of the second class against the first
        coef[seen[0]], intercept[seen[0]] = 0.0, 0.0
        coef[seen[1]], intercept[seen[1]] = meta.coef_[0], meta.intercept_[0]
    else:
        coef[seen], intercept[seen] = meta.coef_, meta.intercept_
    return {
        "method": "stacking",
        "coef": [[float(c) for c in row] for row in coef],
        "intercept": [float(b) for b in intercept],
    }


def _out_of_fold(members: Sequence[Any], X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Each member's out-of-fold P(positive) on the training rows (multiclass: n x m x k)."""
    splitter = StratifiedKFold(n_splits=ENSEMBLE_FOLDS, shuffle=True, random_state=seed)
    classes = int(np.unique(y).size)
    shape = (len(y), len(members)) if classes <= 2 else (len(y), len(members), classes)
    oof = np.zeros(shape)
    for fit_idx, val_idx in splitter.split(X, y):
        for j, member in enumerate(members):
            model = clone(member).fit(X[fit_idx], y[fit_idx])
            oof[val_idx, j] = class_scores(model, X[val_idx])
    return oof


def _members(results: Sequence[CandidateResult], top: int) -> list[CandidateResult]:
    ok = [r for r in results if r.error is None and not np.isnan(r.validation_score)]
    return sorted(ok, key=lambda r: -r.validation_score)[:top]


def ensemble_holdout(
    spec: EnsembleSpec,
    results: Sequence[CandidateResult],
    X_train: np.ndarray,
    y_train: np.ndarray,
    y_val: np.ndarray,
    *,
    metric: str,
    seed: int,
) -> CandidateResult | None:
    """The ensemble of the `top` best fitted candidates, scored on the validation rows.

    None when fewer than two candidates trained.
    """
    chosen = _members(results, spec.top)
    if len(chosen) < 2:
        return None
    started = time.perf_counter()
    val = _stacked([r.validation_scores for r in chosen])
    if spec.method == "voting":
        combiner: dict[str, Any] = {"method": "voting"}
    else:
        estimators = [r.estimator for r in chosen]
        combiner = _stacker(_out_of_fold(estimators, X_train, y_train, seed), y_train)
    scores = combine_scores(combiner, val)
    return _result(spec, chosen, combiner, scores, metric, y_val, started)


def ensemble_cross_validated(
    spec: EnsembleSpec,
    results: Sequence[CandidateResult],
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    metric: str,
) -> CandidateResult | None:
    """The ensemble scored out of fold from the members' out-of-fold scores.

    Members are refitted on every training row only if the ensemble wins (`Ensemble.fit`).
    """
    chosen = _members(results, spec.top)
    if len(chosen) < 2:
        return None
    started = time.perf_counter()
    oof = _stacked([r.validation_scores for r in chosen])
    if spec.method == "voting":
        combiner: dict[str, Any] = {"method": "voting"}
        scores = combine_scores(combiner, oof)
    else:
        scores = np.zeros(oof.shape[:1] + oof.shape[2:])  # n, or n x k
        for fit_idx, val_idx in folds:
            scores[val_idx] = combine_scores(_stacker(oof[fit_idx], y[fit_idx]), oof[val_idx])
        combiner = _stacker(oof, y)
    return _result(spec, chosen, combiner, scores, metric, y, started)


def _result(
    spec: EnsembleSpec,
    chosen: Sequence[CandidateResult],
    combiner: dict[str, Any],
    scores: np.ndarray,
    metric: str,
    y: np.ndarray,
    started: float,
) -> CandidateResult:
    names = [r.name for r in chosen]
    result = CandidateResult(
        name=f"{spec.method}({'+'.join(names)})",
        type="ensemble",
        params={"method": spec.method, "members": names, **_weights(combiner)},
    )
    result.estimator = Ensemble([r.estimator for r in chosen], names, combiner)
    # members are fitted: so is the ensemble
    result.estimator.classes_ = _coded_classes(scores.shape[1] if scores.ndim == 2 else 2)
    result.validation_scores = scores
    result.validation_score = selection_score(metric, y, scores)
    result.fit_seconds = time.perf_counter() - started + sum(r.fit_seconds for r in chosen)
    return result


def _weights(combiner: dict[str, Any]) -> dict[str, Any]:
    if combiner["method"] != "stacking":
        return {}
    coef = combiner["coef"]
    if coef and isinstance(coef[0], list):  # multiclass: one row per class
        return {
            "coef": [[round(c, 6) for c in row] for row in coef],
            "intercept": combiner["intercept"],
        }
    return {"coef": [round(c, 6) for c in coef], "intercept": combiner["intercept"]}

"""Ensembles of a three-class target: trained, registered, loaded and served fast.

The loaded version's probabilities are recomputed here by hand from its members' files
and the combiner it stores, so training, the bundle and serving cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import log_loss

import mlprod
from mlprod.bundle import combine_scores, load_scorer
from mlprod.errors import IntegrityError
from mlprod.pipelines import TrainedRun, train
from mlprod.registry import get_version
from mlprod.spec import CandidateSpec, EnsembleSpec
from mlprod.store import Store
from mlprod.training import Ensemble, ensemble_cross_validated, fit_cross_validated
from tiers_kit import CLASSES, SPEC, make_tiers, write_tiers

# Two tree models of about the same strength, so either combination beats both on this seed.
CANDIDATES = (
    "[{type: random_forest, params: {n_estimators: 60}}, "
    "{type: lightgbm, params: {n_estimators: 100, num_leaves: 4}}]"
)


def _spec(method: str) -> str:
    spec = SPEC.replace("[logistic_regression, lightgbm]", CANDIDATES)
    return spec + f"ensemble: {{method: {method}, top: 2}}\n"


@pytest.fixture(scope="module", params=["voting", "stacking"])
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, TrainedRun]:
    method = str(request.param)
    root = tmp_path_factory.mktemp(f"tiers-{method}")
    path = write_tiers(root, _spec(method), rows=900)
    return method, root, train(path, store=str(root / ".mlprod"))


def _by_hand(method: str, folder: Path, matrix: np.ndarray) -> np.ndarray:
    """The ensemble's probabilities from its members' own files and the stored combiner."""
    document = json.loads((folder / "ensemble.json").read_text(encoding="utf-8"))
    members = [
        load_scorer(m["flavor"], folder / m["file"], m["trusted"]) for m in document["members"]
    ]
    probabilities = [np.asarray(m.scores(matrix), dtype=float) for m in members]
    assert all(p.shape == (len(matrix), 3) for p in probabilities)
    if method == "voting":
        return np.asarray(sum(probabilities) / len(probabilities))
    combiner = document["combiner"]
    coef, intercept = np.array(combiner["coef"]), np.array(combiner["intercept"])
    assert coef.shape == (3, 3 * len(members)) and intercept.shape == (3,)
    logits = np.hstack(probabilities) @ coef.T + intercept
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def test_the_ensemble_wins_and_is_registered_with_every_class(
    trained: tuple[str, Path, TrainedRun],
) -> None:
    method, root, run = trained
    ensemble = next(c for c in run.candidates if c["type"] == "ensemble")
    singles = [c["validation_score"] for c in run.candidates if c["type"] != "ensemble"]
    assert run.winner == ensemble["name"] == f"{method}(random_forest+lightgbm)"
    assert ensemble["validation_score"] > max(singles)
    assert ensemble["params"]["members"] == ["random_forest", "lightgbm"]
    if method == "stacking":
        assert np.array(ensemble["params"]["coef"]).shape == (3, 6)
        assert len(ensemble["params"]["intercept"]) == 3
    with Store.open(f"sqlite:///{root}/.mlprod/mlprod.db") as store:
        version = get_version(store, "tiers", run.version)
    assert version.signature["classes"] == CLASSES


def test_loaded_ensemble_is_the_combination_of_its_members_and_serves_fast(
    trained: tuple[str, Path, TrainedRun],
) -> None:
    method, root, run = trained
    model = mlprod.load(f"tiers@{run.version}", store=str(root / ".mlprod"))
    assert model.flavor == "ensemble" and model.multiclass
    X, y = model.test_data()
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    expected = _by_hand(method, model.folder, model.transformer.transform(X))
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-12)
    assert model.path == "fast", model.fast_check.reason if model.fast_check else None
    assert model.fast_check is not None and "matches the reference path" in model.fast_check.reason
    records = make_tiers(6, seed=4).drop(columns="tier").to_dict("records")
    np.testing.assert_allclose(
        model.predict_proba(records), model.reference_score(make_tiers(6, seed=4)), atol=1e-12
    )
    assert model.predict(X).tolist() == [CLASSES[i] for i in np.argmax(proba, axis=1)]
    # the test metrics were computed from the very probabilities the bundle serves
    assert run.metrics["log_loss"].value == pytest.approx(log_loss(y, proba), abs=1e-9)


def test_binary_combiners_keep_their_format_and_numbers() -> None:
    columns = np.array([[0.2, 0.6], [0.9, 0.7], [0.5, 0.1]])
    np.testing.assert_array_equal(combine_scores({"method": "voting"}, columns), [0.4, 0.8, 0.3])
    stacking = {"method": "stacking", "coef": [1.5, -0.5], "intercept": 0.25}
    logit = columns @ np.array([1.5, -0.5]) + 0.25
    np.testing.assert_array_equal(combine_scores(stacking, columns), 1 / (1 + np.exp(-logit)))


def test_multiclass_stacking_refuses_coefficients_of_the_wrong_shape() -> None:
    members = np.full((2, 2, 3), 1 / 3)  # 2 rows, 2 members, 3 classes
    wrong = {"method": "stacking", "coef": [[0.0] * 4] * 3, "intercept": [0.0] * 3}
    with pytest.raises(IntegrityError, match=r"ensemble.json: the stacking coef is \(3, 4\)"):
        combine_scores(wrong, members)
    right = {"method": "stacking", "coef": [[0.0] * 6] * 3, "intercept": [0.0, 0.0, np.log(2)]}
    np.testing.assert_allclose(combine_scores(right, members), [[0.25, 0.25, 0.5]] * 2)


def test_cross_validated_stacking_scores_every_class_out_of_fold() -> None:
    frame = make_tiers(600, seed=3)
    X = frame[["spend", "visits", "tenure"]].to_numpy()
    y = np.searchsorted(CLASSES, frame["tier"].to_numpy())
    folds = [
        (np.setdiff1d(np.arange(600), part), part) for part in np.array_split(np.arange(600), 3)
    ]
    candidates = [
        CandidateSpec(type="logistic_regression"),
        CandidateSpec(type="lightgbm", params={"n_estimators": 30, "num_leaves": 4}),
    ]
    results = fit_cross_validated(candidates, X, y, folds, metric="log_loss", seed=0)
    built = ensemble_cross_validated(
        EnsembleSpec(method="stacking", top=2), results, y, folds, metric="log_loss"
    )
    assert built is not None and built.validation_scores.shape == (600, 3)
    np.testing.assert_allclose(built.validation_scores.sum(axis=1), 1.0, atol=1e-12)
    clipped = np.clip(built.validation_scores, 1e-15, 1 - 1e-15)
    assert built.validation_score == pytest.approx(-log_loss(y, clipped), abs=1e-9)
    assert isinstance(built.estimator, Ensemble)
    refitted = built.estimator.fit(X, y)
    assert refitted.classes_.tolist() == [0, 1, 2]
    proba = refitted.predict_proba(X)
    assert proba.shape == (600, 3) and refitted.predict(X).tolist() == np.argmax(proba, 1).tolist()

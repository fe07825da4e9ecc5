"""Training on Spark: XGBoost's Spark estimator on local[2], an ordinary bundle back.

Proves that Spark's own transform and the bundle's XGBoost scorer agree to 1e-6 on the
same rows, and that a spec with ``training.engine: spark`` registers a version that
scores through `mlprod.load` like any other, for a binary and a three-class target.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import mlprod
from mlprod.bundle import load_scorer, save_model
from mlprod.data import make_churn_table
from mlprod.features import FeatureTransformer, infer_kinds
from mlprod.pipelines import train
from mlprod.training import fit_xgboost_on_spark, make_estimator
from support import SMALL_SPEC, write_project
from tiers_kit import CLASSES, SPEC, make_tiers, write_tiers

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_spark_transform_and_the_saved_booster_agree(spark: Any, tmp_path: Path) -> None:
    table = make_churn_table(2000, seed=5)
    y = table.pop("churned").astype(int).to_numpy()
    features = table.drop(columns=["customer_id", "event_time"])
    kinds = dict(infer_kinds(features, skip=set()))
    X = FeatureTransformer(kinds=kinds).fit(features).transform(features)
    estimator = make_estimator("xgboost", {"n_estimators": 60}, seed=7)
    fitted, spark_model = fit_xgboost_on_spark(estimator, X, y, master="local[2]", workers=2)
    saved = save_model(fitted, tmp_path)
    scorer = load_scorer(saved.flavor, tmp_path / saved.filename, [])
    rows = spark.createDataFrame(pd.DataFrame({"features": list(X[:500])}))
    transformed = spark_model.transform(rows).select("probability").toPandas()
    from_spark = np.array([float(p[1]) for p in transformed["probability"]])
    np.testing.assert_allclose(scorer.scores(X[:500]), from_spark, rtol=0, atol=1e-6)
    assert len(fitted.get_booster().get_dump()) == 60  # the trees Spark fitted, all of them


def test_a_spec_with_the_spark_engine_registers_an_ordinary_version(
    spark: Any, tmp_path: Path
) -> None:
    spec = SMALL_SPEC.replace(
        "candidates: [logistic_regression, lightgbm]",
        "candidates: [{type: xgboost, params: {n_estimators: 40}}]\n"
        "training: {engine: spark, master: 'local[2]', workers: 2}",
    )
    project = write_project(tmp_path, rows=1500, spec=spec)
    run = mlprod.train(project.spec, store=project.store)
    model = mlprod.load(f"churn@{run.version}", store=project.store)
    assert model.flavor == "xgboost" and run.winner == "xgboost"
    rows = pd.read_csv(project.root / "customers.csv").head(100)
    scores = model.score(rows)
    assert scores.shape == (100,) and np.all((scores > 0) & (scores < 1))


def _tiers_matrix(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Encoded tiers features and labels coded 0..k-1 in `CLASSES` order."""
    table = make_tiers(rows, seed=seed)
    y = np.searchsorted(CLASSES, table.pop("tier").to_numpy())
    kinds = dict(infer_kinds(table, skip=set()))
    return FeatureTransformer(kinds=kinds).fit(table).transform(table), y


def test_three_classes_on_spark_and_the_saved_booster_agree(spark: Any, tmp_path: Path) -> None:
    X, y = _tiers_matrix(600, seed=3)
    estimator = make_estimator("xgboost", {"n_estimators": 12}, seed=7)
    fitted, spark_model = fit_xgboost_on_spark(estimator, X, y, master="local[2]", workers=2)
    assert fitted.get_params()["objective"] == "multi:softprob" and fitted.n_classes_ == 3
    assert fitted.get_params()["eval_metric"] == "mlogloss"  # as a local fit records it
    saved = save_model(fitted, tmp_path)
    scorer = load_scorer(saved.flavor, tmp_path / saved.filename, [])
    local = scorer.scores(X[:200])
    assert local.shape == (200, 3)
    np.testing.assert_allclose(local.sum(axis=1), 1.0, atol=1e-6)
    rows = spark.createDataFrame(pd.DataFrame({"features": list(X[:200])}))
    transformed = spark_model.transform(rows).select("probability").toPandas()
    from_spark = np.array([list(p) for p in transformed["probability"]])
    np.testing.assert_allclose(local, from_spark, rtol=0, atol=1e-6)
    assert len(fitted.get_booster().get_dump()) == 12 * 3  # one tree per class per round


def test_a_class_missing_from_the_training_rows_is_refused_before_spark_starts() -> None:
    X, y = _tiers_matrix(60, seed=3)
    keep = y != 1  # no "gold" row: Spark would count two classes and misplace "silver"
    estimator = make_estimator("xgboost", {"n_estimators": 5}, seed=7)
    with pytest.raises(ValueError, match=r"lack class codes \[1\].*stratified split"):
        fit_xgboost_on_spark(estimator, X[keep], y[keep], master="local[2]", workers=2)


def test_a_multiclass_spec_with_the_spark_engine_registers_k_class_version(
    spark: Any, tmp_path: Path
) -> None:
    spec = SPEC.replace(
        "candidates: [logistic_regression, lightgbm]",
        "candidates: [{type: xgboost, params: {n_estimators: 15}}]\n"
        "training: {engine: spark, master: 'local[2]', workers: 2}",
    )
    path = write_tiers(tmp_path, spec, rows=800)
    run = train(path, store=str(tmp_path / ".mlprod"))
    assert run.winner == "xgboost" and run.classes == CLASSES and run.threshold == 0.0
    model = mlprod.load(f"tiers@{run.version}", store=str(tmp_path / ".mlprod"))
    assert model.flavor == "xgboost" and model.multiclass and model.classes == CLASSES
    X, y = model.test_data()
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    predicted = np.argmax(proba, axis=1)
    recorded = run.metrics  # the multiclass metrics, from the bundle's own scores
    assert recorded["accuracy"].value == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    assert recorded["macro_f1"].value == pytest.approx(
        f1_score(y, predicted, average="macro"), abs=1e-12
    )
    assert recorded["roc_auc"].value == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-6
    )
    true_class = proba[np.arange(len(y)), y]  # float32 rows: sklearn's log_loss wants sums of 1
    assert recorded["log_loss"].value == pytest.approx(-np.mean(np.log(true_class)), abs=1e-9)
    assert {f"recall[{c}]" for c in CLASSES} <= set(recorded)
    assert recorded["roc_auc"].value > 0.8
    shares = model.reference["predicted"]  # the reference bins the predicted classes
    counted = dict(zip(shares["categories"], shares["counts"], strict=False))
    assert counted == dict(Counter(CLASSES[i] for i in predicted))

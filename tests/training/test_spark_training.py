"""Training on Spark: XGBoost's Spark estimator on local[2], an ordinary bundle back.

Proves that Spark's own transform and the bundle's XGBoost scorer agree to 1e-6 on the
same rows, and that a spec with ``training.engine: spark`` registers a version that
scores through `mlprod.load` like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.bundle import load_scorer, save_model
from mlprod.data import make_churn_table, spark_available, spark_session
from mlprod.features import FeatureTransformer, infer_kinds
from mlprod.training import fit_xgboost_on_spark, make_estimator
from support import SMALL_SPEC, need_service, write_project

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    missing = spark_available()
    if missing is not None:
        need_service("Spark", missing)
    session = spark_session("local[2]")
    try:
        yield session
    finally:
        session.stop()


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

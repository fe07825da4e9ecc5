"""pytest plugin: fixtures for acceptance tests of a registered model version.

Installed with mlprod and enabled automatically. Point it at a version with
``--mlprod-model churn@3`` (and ``--mlprod-store`` or ``MLPROD_STORE``), then write
ordinary tests::

    def test_recall_is_enough(mlprod_metrics):
        assert mlprod_metrics["recall"].low >= 0.6

    def test_scores_are_probabilities(mlprod_model, mlprod_test_data):
        X, y = mlprod_test_data
        assert ((mlprod_model.score(X) >= 0) & (mlprod_model.score(X) <= 1)).all()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlprod.bundle import Model
    from mlprod.evaluation import MetricValue


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlprod", "mlprod model acceptance tests")
    group.addoption(
        "--mlprod-model", default=None, help="Model reference: churn, churn@production, churn@3"
    )
    group.addoption(
        "--mlprod-store",
        default=None,
        help="Store folder or URL (default $MLPROD_STORE or .mlprod/)",
    )
    parser.addini("mlprod_model", "Model reference for the mlprod fixtures", default="")


@pytest.fixture(scope="session")
def mlprod_model(request: pytest.FixtureRequest) -> Model:
    """The verified model version named by --mlprod-model."""
    from mlprod.pipelines import load

    ref = request.config.getoption("--mlprod-model") or request.config.getini("mlprod_model")
    if not ref:
        pytest.fail(
            "the mlprod fixtures need --mlprod-model REF (or mlprod_model in the pytest ini)"
        )
    return load(str(ref), store=request.config.getoption("--mlprod-store"))


@pytest.fixture(scope="session")
def mlprod_test_data(mlprod_model: Model) -> tuple[pd.DataFrame, np.ndarray]:
    """The version's held-out test rows (raw features) and their 0/1 labels."""
    return mlprod_model.test_data()


@pytest.fixture(scope="session")
def mlprod_scores(mlprod_model: Model, mlprod_test_data: tuple[Any, Any]) -> np.ndarray:
    """P(positive) for every test row, from the loaded bundle (multiclass: n x k)."""
    return mlprod_model.score(mlprod_test_data[0])


@pytest.fixture(scope="session")
def mlprod_metrics(
    mlprod_model: Model, mlprod_test_data: tuple[Any, Any], mlprod_scores: np.ndarray
) -> dict[str, MetricValue]:
    """Test-set metrics with bootstrap 95% intervals, at the version's threshold.

    `evaluate`'s defaults (resamples and seed) are the ones training used, so these are
    the intervals the version's gates were decided on. A multiclass version gets the
    multiclass metrics (``macro_f1``, ``recall[CLASS]``, ...), as its training did.
    """
    from mlprod.evaluation import evaluate, evaluate_multiclass

    if mlprod_model.multiclass:
        return evaluate_multiclass(mlprod_test_data[1], mlprod_scores, mlprod_model.classes)
    return evaluate(mlprod_test_data[1], mlprod_scores, mlprod_model.threshold)

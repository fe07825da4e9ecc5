"""One conformance suite, run against every registered model flavour.

Each flavour must: be chosen for its own estimators, write a bundle, read it back and
score exactly what the fitted model scored (1e-12), and refuse a tampered model file.
A flavour registered without a case here fails `test_every_flavour_has_a_case`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlprod.bundle import Model, flavor_names, flavor_of, read_manifest, write_bundle
from mlprod.errors import IntegrityError
from mlprod.features import FeatureTransformer
from mlprod.training import Ensemble, make_estimator

KINDS = {"amount": "numeric", "plan": "categorical", "partner": "boolean"}


def _ensemble(seed: int) -> Any:
    members = [
        make_estimator("logistic_regression", {}, seed=seed),
        make_estimator("lightgbm", {}, seed=seed),
    ]
    return Ensemble(members=members, names=["lr", "lgbm"], combiner={"method": "voting"})


CASES: dict[str, Callable[[int], Any]] = {
    "sklearn": lambda seed: make_estimator("random_forest", {}, seed=seed),
    "lightgbm": lambda seed: make_estimator("lightgbm", {}, seed=seed),
    "xgboost": lambda seed: make_estimator("xgboost", {}, seed=seed),
    "ensemble": _ensemble,
    "mlp": lambda seed: make_estimator(
        "mlp", {"width": 16, "max_epochs": 5, "telemetry": False}, seed=seed
    ),
}


def test_every_flavour_has_a_case() -> None:
    assert sorted(CASES) == flavor_names()


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    n = 600
    frame = pd.DataFrame(
        {
            "amount": np.where(rng.random(n) < 0.1, np.nan, rng.normal(50, 10, n)),
            "plan": rng.choice(["basic", "premium", None], n, p=[0.6, 0.35, 0.05]),
            "partner": rng.choice([True, False], n),
        }
    )
    signal = np.nan_to_num(frame["amount"].to_numpy(), nan=50.0) / 10 + (frame["plan"] == "premium")
    y = (signal + rng.normal(0, 1, n) > 5.5).astype(int)
    return frame, y


@pytest.mark.parametrize("flavor", sorted(CASES))
def test_flavour_round_trips_exactly_and_refuses_tampering(
    flavor: str, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    frame, y = data
    transformer = FeatureTransformer(kinds=KINDS).fit(frame)
    X = transformer.transform(frame)
    estimator = CASES[flavor](0).fit(X, y)
    assert flavor_of(estimator) == flavor
    expected = np.asarray(estimator.predict_proba(X)[:, 1], dtype=float)
    folder = tmp_path / "bundle"
    folder.mkdir()
    manifest = write_bundle(
        folder,
        name="churn",
        run_id="0" * 32,
        transformer=transformer,
        estimator=estimator,
        threshold=0.5,
        signature={"fields": [], "classes": [0, 1]},
        test_frame=frame,
        y_test=y,
        expected_scores=expected,
    )
    assert manifest.flavor == flavor and read_manifest(folder) == manifest
    assert not list(folder.glob("*.pkl"))
    model = Model.open(folder)
    np.testing.assert_allclose(model.score(frame), expected, rtol=0, atol=1e-12)

    victim = folder / manifest.model_file
    if flavor == "ensemble":  # the document is checked too: tamper with a member's file
        victim = folder / json.loads(victim.read_text())["members"][0]["file"]
    with victim.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IntegrityError, match="modified after registration"):
        Model.open(folder)

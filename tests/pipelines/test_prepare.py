"""The training matrix: fitted on the training rows, encoded for every row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlprod.features import FeatureTransformer
from mlprod.pipelines._prepare import fit_features

KINDS = {
    "amount": "numeric",
    "plan": "categorical",
    "partner": "boolean",
    "signup": "datetime",
    "code": "categorical",
}


def raw_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Every kind, with missing values, rare categories and values typed as text."""
    rare = [f"r{i}" for i in range(40)]  # more than the encoder keeps: some fold together
    return pd.DataFrame(
        {
            "amount": np.where(rng.random(n) < 0.1, None, rng.normal(50, 10, n).astype(str)),
            "plan": rng.choice(["basic", "premium", None, *rare[:3]], n),
            "partner": rng.choice(["yes", "No", True, None, "maybe"], n),
            "signup": rng.choice(["2024-05-01", "2024-05-01T12:00:00+05:30", None, "junk"], n),
            "code": rng.choice([*rare, 5, 5.0, "5"], n),
        }
    ).astype(object)


def test_the_matrix_is_the_transform_of_every_row(rng: np.random.Generator) -> None:
    df = raw_frame(rng, 3_000)
    train = np.sort(rng.permutation(3_000)[:2_000])
    rng.shuffle(train)  # a split's rows come in any order
    features = FeatureTransformer(kinds=KINDS)
    matrix = fit_features(features, df, train)
    reference = FeatureTransformer(kinds=KINDS).fit(df.iloc[train])
    np.testing.assert_array_equal(matrix, reference.transform(df))
    assert features.feature_names_ == reference.feature_names_


def test_every_row_in_training(rng: np.random.Generator) -> None:
    df = raw_frame(rng, 500)
    train = rng.permutation(500)
    matrix = fit_features(FeatureTransformer(kinds=KINDS), df, train)
    reference = FeatureTransformer(kinds=KINDS).fit(df.iloc[train])
    np.testing.assert_array_equal(matrix, reference.transform(df))

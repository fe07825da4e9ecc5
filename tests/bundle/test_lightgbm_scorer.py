"""LightGBM's C prediction call made directly: the numbers `booster.predict` gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlprod.bundle.flavors._lightgbm import DirectBooster, LightGBMScorer


def _model_file(folder: Path, rng: np.random.Generator, classes: int) -> Path:
    import lightgbm

    X = rng.normal(size=(400, 6))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take their own branch
    signal = np.nan_to_num(X) @ np.arange(1.0, 7.0) + rng.normal(size=len(X))
    y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    params = {"verbose": -1, "num_leaves": 15, "min_data_in_leaf": 5, "seed": 1}
    params |= (
        {"objective": "multiclass", "num_class": classes}
        if classes > 2
        else {"objective": "binary"}
    )
    booster = lightgbm.train(params, lightgbm.Dataset(X, y), num_boost_round=25)
    path = folder / f"model-{classes}.txt"
    booster.save_model(str(path))
    return path


@pytest.mark.parametrize("classes", [2, 3])
def test_direct_scores_are_predicts_bit_for_bit(
    tmp_path: Path, rng: np.random.Generator, classes: int
) -> None:
    plain = LightGBMScorer(_model_file(tmp_path, rng, classes))
    direct = plain.fast_scorer()
    assert isinstance(direct, DirectBooster) and direct.model_file == plain.model_file
    X = rng.normal(size=(300, 6))
    X[rng.random(X.shape) < 0.1] = np.nan
    for rows in (X[:1], X[:7], X, np.asfortranarray(X[:20]), X[:5].astype(np.float32)):
        got, expected = direct.scores(rows), plain.scores(np.asarray(rows, dtype=np.float64))
        assert got.shape == expected.shape == ((len(rows),) if classes == 2 else (len(rows), 3))
        assert np.array_equal(got, expected)
    assert len(set(np.round(direct.scores(X).ravel(), 9))) > 100  # real, varied scores


def test_what_the_c_call_cannot_take_goes_to_predict(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    plain = LightGBMScorer(_model_file(tmp_path, rng, 2))
    direct = DirectBooster(plain)
    assert direct.scores(np.empty((0, 6))).shape == (0,)
    with pytest.raises(Exception, match="number of features"):  # LightGBM's own error
        direct.scores(rng.normal(size=(2, 4)))

"""XGBoost boosters, saved as XGBoost's own UBJSON model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlprod.bundle.flavors._base import SavedModel, Scorer


class _XGBoostScorer:
    def __init__(self, path: Path) -> None:
        import xgboost

        self.booster = xgboost.Booster(model_file=str(path))
        self.booster.set_param({"nthread": 1})

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(X), dtype=float)


class XGBoostFlavor:
    name = "xgboost"

    def handles(self, estimator: Any) -> bool:
        return type(estimator).__module__.startswith("xgboost")

    def save(self, estimator: Any, folder: Path, stem: str) -> SavedModel:
        estimator.get_booster().save_model(str(folder / f"{stem}.ubj"))
        return SavedModel(self.name, f"{stem}.ubj")

    def load(self, path: Path, trusted_types: list[str]) -> Scorer:
        return _XGBoostScorer(path)

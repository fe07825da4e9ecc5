"""LightGBM boosters, saved as LightGBM's own text model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlprod.bundle.flavors._base import SavedModel, Scorer


class LightGBMScorer:
    """The booster, one thread per call (a server scores many small requests)."""

    def __init__(self, path: Path) -> None:
        import lightgbm

        self.model_file = path  # what the optional tree compiler reads
        self.booster = lightgbm.Booster(model_file=str(path))

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, num_threads=1), dtype=float)


class LightGBMFlavor:
    name = "lightgbm"

    def handles(self, estimator: Any) -> bool:
        return type(estimator).__module__.startswith("lightgbm")

    def save(self, estimator: Any, folder: Path, stem: str) -> SavedModel:
        estimator.booster_.save_model(str(folder / f"{stem}.txt"))
        return SavedModel(self.name, f"{stem}.txt")

    def load(self, path: Path, trusted_types: list[str]) -> Scorer:
        return LightGBMScorer(path)

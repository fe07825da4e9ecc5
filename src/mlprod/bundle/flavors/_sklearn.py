"""scikit-learn estimators and pipelines, saved with skops (no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlprod.bundle.flavors._base import SavedModel, Scorer
from mlprod.bundle.flavors._skops import load_skops, save_skops


class _SklearnScorer:
    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def scores(self, X: np.ndarray) -> np.ndarray:
        proba = self.estimator.predict_proba(X)  # multiclass: every class's column
        return np.asarray(proba[:, 1] if proba.shape[1] == 2 else proba, dtype=float)


class SklearnFlavor:
    """Anything with ``predict_proba``: the fallback every other flavour is tried before."""

    name = "sklearn"

    def handles(self, estimator: Any) -> bool:
        return hasattr(estimator, "predict_proba")

    def save(self, estimator: Any, folder: Path, stem: str) -> SavedModel:
        return save_skops(estimator, folder / f"{stem}.skops", self.name)

    def load(self, path: Path, trusted_types: list[str]) -> Scorer:
        return _SklearnScorer(load_skops(path, trusted_types))

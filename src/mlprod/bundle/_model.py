"""A loaded model version: the bundle's transformer and scorer, verified before loading.

`Model.open` checks every file against the hashes the store kept at registration (or,
for versions registered before it kept them, the manifest's) first, then builds the
transformer (skops, allowed types only) and the flavour's scorer; nothing unpickles.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlprod.bundle._manifest import (
    REFERENCE,
    TARGET_COLUMN,
    TEST_DATA,
    TRANSFORMER,
    Manifest,
    inside,
    read_manifest,
)
from mlprod.bundle.flavors import Scorer, load_scorer, load_skops
from mlprod.errors import IntegrityError, SchemaError

WARM_UP_ROWS = 5


class Model:
    """A loaded, hash-verified model version: raw records in, scores and labels out.

    Example::

        model = mlprod.load("churn@production")
        model.predict_proba(frame)[:, 1]
    """

    def __init__(self, folder: Path, manifest: Manifest, transformer: Any, scorer: Scorer):
        self.folder = folder
        self.manifest = manifest
        self.transformer = transformer
        self.scorer = scorer
        self.version: int | None = None

    @classmethod
    def open(cls, folder: str | Path, *, expected: Mapping[str, str] | None = None) -> Model:
        """Verify and load the bundle in `folder`.

        `expected`: every file's sha256 as the registry recorded it (`bundle_files`);
        without it the bundle is checked against its own manifest only.
        """
        folder = Path(folder)
        manifest = read_manifest(folder, expected)
        trusted = manifest.trusted_types
        transformer_file = _hashed(folder, manifest, TRANSFORMER)
        transformer = load_skops(transformer_file, trusted.get(TRANSFORMER, []))
        model_file = manifest.model_file
        path = _hashed(folder, manifest, model_file)
        scorer = load_scorer(manifest.flavor, path, trusted.get(model_file, []))
        return cls(folder, manifest, transformer, scorer)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def signature(self) -> dict[str, Any]:
        return dict(self.manifest.signature)

    @property
    def classes(self) -> list[Any]:
        """[negative label, positive label] as in the training data; k > 2: every class."""
        return list(self.manifest.signature["classes"])

    @property
    def multiclass(self) -> bool:
        """Three or more classes: scores are an n x k matrix and the label is the argmax."""
        return len(self.classes) > 2

    @property
    def feature_names(self) -> list[str]:
        return [field["name"] for field in self.manifest.signature["fields"]]

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """P(positive) for each row of raw feature columns (extra columns are ignored).

        A multiclass version answers the n x k class probabilities, in `classes` order.
        """
        if not isinstance(X, pd.DataFrame):
            raise SchemaError(
                f"expected a pandas DataFrame of raw features, got {type(X).__name__}"
            )
        return self.scorer.scores(self.transformer.transform(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """scikit-learn style: column 0 is P(negative), column 1 is P(positive).

        Multiclass: one column per class, in `classes` order.
        """
        positive = self.score(X)
        if positive.ndim == 2:
            return positive
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class labels at the version's threshold, in the training data's values.

        Multiclass: the most probable class.
        """
        labels: np.ndarray
        if self.multiclass:
            labels = np.asarray(self.classes)[np.argmax(self.score(X), axis=1)]
            return labels
        negative, positive = self.classes
        labels = np.where(self.score(X) >= self.threshold, positive, negative)
        return labels

    @functools.cached_property
    def reference(self) -> dict[str, Any] | None:
        """Reference distributions of the inputs and the score (None in older bundles)."""
        path = self.folder / REFERENCE
        if REFERENCE not in self.manifest.files:
            return None
        reference: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return reference

    def warm_up(self) -> np.ndarray:
        """Score the first test rows; IntegrityError unless every score is a probability.

        What a version must do before it takes traffic: a model that loads but cannot
        score, or scores NaN, is as broken as one that does not load.
        """
        frame, _ = self.test_data()
        scores = np.asarray(self.score(frame.head(WARM_UP_ROWS)), dtype=float)
        expected = min(len(frame), WARM_UP_ROWS)
        shape = (expected, len(self.classes)) if self.multiclass else (expected,)
        if scores.shape != shape or not np.all((scores >= 0) & (scores <= 1)):
            raise IntegrityError(
                f"{self.name} answered its warm-up with {scores[:expected].tolist()} for "
                f"{expected} test rows, not {expected} probabilities; the bundle is damaged"
            )
        return scores

    def test_data(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The held-out test rows (raw features) and their 0/1 labels, kept for gates."""
        frame = pd.read_parquet(self.folder / TEST_DATA)
        y = frame.pop(TARGET_COLUMN).to_numpy(dtype=int)
        return frame, y

    def __repr__(self) -> str:
        version = f"@{self.version}" if self.version is not None else ""
        return f"<Model {self.name}{version} flavor={self.flavor} threshold={self.threshold:.4f}>"


def _hashed(folder: Path, manifest: Manifest, name: str) -> Path:
    """A file the model is built from: inside the bundle and covered by a checked hash."""
    path = inside(folder, name, "model file")
    if name not in manifest.files:
        raise IntegrityError(
            f"bundle {folder.name}: {name!r} is not among the files its manifest hashes; "
            "refusing to load an unchecked file"
        )
    return path

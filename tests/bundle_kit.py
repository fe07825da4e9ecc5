"""Small real bundles, written in a second or two, for tests that need a loadable version."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlprod.bundle import (
    Manifest,
    Model,
    bundle_files,
    read_manifest,
    seal_bundle,
    write_bundle,
)
from mlprod.bundle._manifest import sha256_file
from mlprod.features import FeatureTransformer
from mlprod.store import LocalArtifacts
from mlprod.training import make_estimator

KINDS = {"amount": "numeric", "plan": "categorical"}


def small_frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two features and a label that follows `amount`."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"amount": rng.normal(50, 10, n), "plan": rng.choice(["basic", "premium"], n)}
    )
    y = (frame["amount"].to_numpy() + rng.normal(0, 5, n) > 50).astype(int)
    return frame, y


def write_small_bundle(
    folder: Path, *, kind: str = "logistic_regression", flip: bool = False, name: str = "churn"
) -> Path:
    """A sealed bundle of a `kind` model (`flip`: trained on inverted labels) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    frame, y = small_frame()
    labels = 1 - y if flip else y
    transformer = FeatureTransformer(kinds=KINDS).fit(frame)
    X = transformer.transform(frame)
    params = {"n_estimators": 20} if kind in {"xgboost", "lightgbm"} else {}
    estimator = make_estimator(kind, params, seed=0).fit(X, labels)
    write_bundle(
        folder,
        name=name,
        run_id="0" * 32,
        transformer=transformer,
        estimator=estimator,
        threshold=0.5,
        signature={
            "fields": [{"name": c, "kind": k} for c, k in KINDS.items()],
            "classes": [0, 1],
        },
        test_frame=frame.head(50),
        y_test=y[:50],
        expected_scores=np.asarray(estimator.predict_proba(X[:50])[:, 1], dtype=float),
    )
    return folder


def good_and_evil(root: Path) -> dict[str, Path]:
    """An XGBoost bundle (``model.ubj``) and the attacker's, trained on inverted labels."""
    return {
        "good": write_small_bundle(root / "good", kind="xgboost"),
        "evil": write_small_bundle(root / "evil", kind="xgboost", flip=True),
    }


def rewrite_manifest(folder: Path, **changes: object) -> None:
    """Edit manifest.json as an attacker would, without resealing through mlprod."""
    path = folder / "manifest.json"
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document, indent=2, sort_keys=True))


def swap_file(folder: Path, name: str, replacement: Path) -> None:
    """Replace `name` with `replacement` and rewrite its hash in the manifest to match."""
    (folder / name).write_bytes(replacement.read_bytes())
    files = json.loads((folder / "manifest.json").read_text())["files"]
    rewrite_manifest(folder, files={**files, name: sha256_file(folder / name)})


class Shelf:
    """Real bundles in a real `LocalArtifacts`, one per model name, for registry tests.

    Promotions load, verify and warm up the version, so a registry test needs versions
    whose bundles exist: `put` stores a copy of one small bundle renamed to `model`.
    """

    def __init__(self, root: Path, source: Path) -> None:
        self.artifacts = LocalArtifacts(root)
        self.source = source
        self.stored: dict[str, tuple[str, dict[str, str]]] = {}

    def put(self, model: str = "churn", *, fresh: bool = False) -> tuple[str, dict[str, str]]:
        """(bundle id, every file's sha256) of a stored bundle of `model`.

        `fresh`: a copy of its own, so a test can damage one version's bundle only.
        """
        if fresh or model not in self.stored:
            folder = self.artifacts.root / "staging" / uuid.uuid4().hex
            shutil.copytree(self.source, folder)
            if model != "churn":
                manifest = read_manifest(folder).model_copy(update={"name": model})
                seal_bundle(folder, manifest)
            bundle_id = self.artifacts.put_dir(folder)
            self.stored[model] = (bundle_id, bundle_files(self.artifacts.path(bundle_id)))
        return self.stored[model]

    def folder(self, model: str = "churn") -> Path:
        """The stored bundle's folder, for tests that damage it."""
        return self.artifacts.path(self.put(model)[0])


class LinearScorer:
    """A scorer that every output column moves: any encoding slip changes the score."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    def scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X @ self.weights)


def linear_model(
    folder: Path, name: str, frame: pd.DataFrame, kinds: dict[str, str], weights: Any
) -> Model:
    """A `Model` over `frame`'s fitted transformer and a linear scorer, its test rows in
    `folder` (created): fast-path checks without training anything.

    `weights(width)` gives the scorer's weights for the transformer's output width.
    """
    transformer = FeatureTransformer(kinds=kinds).fit(frame)
    folder.mkdir()
    frame.assign(__target__=0).to_parquet(folder / "test.parquet")
    manifest = Manifest(
        name=name,
        run_id="0" * 32,
        flavor="sklearn",
        model_file="model.skops",
        threshold=0.5,
        signature={"fields": [{"name": k, "kind": v} for k, v in kinds.items()], "classes": [0, 1]},
    )
    return Model(folder, manifest, transformer, LinearScorer(weights(transformer.n_features_out_)))

"""Small real bundles, written in a second or two, for tests that need a loadable version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlprod.bundle import write_bundle
from mlprod.bundle._manifest import sha256_file
from mlprod.features import FeatureTransformer
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

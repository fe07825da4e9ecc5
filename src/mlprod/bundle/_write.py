"""Writing a bundle: every file in its native format, sealed, then proven to reload exactly.

Example::

    manifest = write_bundle(folder, name="churn", run_id=run_id, transformer=transformer,
                            estimator=winner, threshold=0.41, signature=signature,
                            test_frame=X_test, y_test=y_test, expected_scores=test_scores)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlprod.bundle._manifest import (
    METRICS,
    REFERENCE,
    TARGET_COLUMN,
    TEST_DATA,
    TRANSFORMER,
    Manifest,
    seal_bundle,
)
from mlprod.bundle._model import Model
from mlprod.bundle.flavors import save_model, save_skops
from mlprod.errors import IntegrityError

PARITY_TOLERANCE = 1e-9


def write_bundle(
    folder: Path,
    *,
    name: str,
    run_id: str,
    transformer: Any,
    estimator: Any,
    threshold: float,
    signature: Mapping[str, Any],
    test_frame: pd.DataFrame,
    y_test: np.ndarray,
    expected_scores: np.ndarray,
    metrics: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
    importance: Mapping[str, float] | None = None,
    libraries: Mapping[str, str] | None = None,
) -> Manifest:
    """Write a bundle into `folder` (files already there, e.g. a report, are sealed too).

    The saved bundle must score `test_frame` exactly as the trained model did
    (`expected_scores`, to 1e-9): a bundle that would serve different numbers is refused.
    """
    saved_transformer = save_skops(transformer, folder / TRANSFORMER, "sklearn")
    saved = save_model(estimator, folder)
    test_frame.assign(**{TARGET_COLUMN: y_test}).to_parquet(folder / TEST_DATA, index=False)
    (folder / METRICS).write_text(json.dumps(dict(metrics or {}), indent=2), encoding="utf-8")
    if reference is not None:
        (folder / REFERENCE).write_text(json.dumps(reference), encoding="utf-8")
    manifest = Manifest(
        name=name,
        run_id=run_id,
        flavor=saved.flavor,
        model_file=saved.filename,
        threshold=float(threshold),
        signature=dict(signature),
        importance=dict(importance or {}),
        libraries=dict(libraries or {}),
        trusted_types={
            TRANSFORMER: list(saved_transformer.trusted_types),
            saved.filename: list(saved.trusted_types),
        },
    )
    sealed = seal_bundle(folder, manifest)
    _check_parity(folder, test_frame, expected_scores)
    return sealed


def _check_parity(folder: Path, test_frame: pd.DataFrame, expected: np.ndarray) -> None:
    """The saved bundle must score the test set exactly as the in-memory model did."""
    reloaded = Model.open(folder).score(test_frame)
    worst = float(np.max(np.abs(reloaded - expected))) if len(expected) else 0.0
    if not worst <= PARITY_TOLERANCE:
        raise IntegrityError(
            f"the saved bundle scores the test set differently from the trained model "
            f"(max difference {worst:.3g}); this is a bug in mlprod, please report it"
        )

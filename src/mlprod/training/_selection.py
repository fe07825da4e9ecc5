"""Feature selection fitted on training rows, kept as a step of the bundle's transformer.

``importance`` keeps the `k` columns a quick LightGBM finds most useful; ``rfe`` removes
the weakest columns step by step (recursive feature elimination); ``pca`` and
``kernel_pca`` replace the columns by `k` components of the standardised matrix. The
fitted step joins the feature transformer in one scikit-learn pipeline, so serving
applies exactly what training learned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlprod.errors import SpecError
from mlprod.features import ColumnSubset
from mlprod.spec import SelectionSpec

KERNEL_PCA_ROWS = 2000  # kernel PCA keeps its fitting rows: few, and never the test set


@dataclass(frozen=True)
class Selection:
    """The fitted step, the names of the columns it outputs, and where each came from."""

    step: Any
    names: list[str]
    source: Callable[[str], str]


def _ranker(seed: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=100, learning_rate=0.1, num_leaves=15, random_state=seed,
        n_jobs=2, verbose=-1, importance_type="gain",
    )  # fmt: skip


def fit_selection(
    spec: SelectionSpec,
    X: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    source: Callable[[str], str],
    seed: int,
) -> Selection:
    """Fit the selection step on training rows (X, y) whose columns are `names`.

    Example::

        chosen = fit_selection(SelectionSpec(method="importance", k=10), X, y, names, str, 0)
        chosen.step.transform(X).shape[1]   # 10
    """
    width = X.shape[1]
    if spec.k > width:
        raise SpecError(
            f"selection.k is {spec.k}, but the features give only {width} columns; "
            f"set selection.k to at most {width}"
        )
    if spec.method in ("pca", "kernel_pca"):
        return _components(spec, X, seed)
    if spec.method == "importance":
        gains = np.asarray(_ranker(seed).fit(X, y).feature_importances_, dtype=float)
        keep = sorted(np.argsort(-gains, kind="stable")[: spec.k].tolist())
    else:
        from sklearn.feature_selection import RFE

        step = max(1, (width - spec.k) // 5)
        rfe = RFE(_ranker(seed), n_features_to_select=spec.k, step=step).fit(X, y)
        keep = np.flatnonzero(rfe.support_).tolist()
    kept = [str(names[i]) for i in keep]
    return Selection(ColumnSubset(indices=keep, names=kept).fit(X), kept, source)


def _components(spec: SelectionSpec, X: np.ndarray, seed: int) -> Selection:
    from sklearn.decomposition import PCA, KernelPCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    reducer: Any = (
        PCA(n_components=spec.k, random_state=seed)
        if spec.method == "pca"
        else KernelPCA(n_components=spec.k, kernel="rbf", random_state=seed)
    )
    rows = X
    if spec.method == "kernel_pca" and len(X) > KERNEL_PCA_ROWS:
        rows = X[np.random.default_rng(seed).choice(len(X), KERNEL_PCA_ROWS, replace=False)]
    step = Pipeline([("scale", StandardScaler()), ("reduce", reducer)]).fit(rows)
    names = [f"{spec.method}_{i}" for i in range(spec.k)]
    return Selection(step, names, lambda name: name)


def with_selection(transformer: Any, selection: Selection | None) -> Any:
    """The transformer the bundle stores: the features, then the selection if any."""
    if selection is None:
        return transformer
    from sklearn.pipeline import Pipeline

    return Pipeline([("features", transformer), ("select", selection.step)])

"""Ranking raw feature columns three ways, to decide what to keep before tuning.

Mutual information and tree importance are measured on training rows; permutation
importance shuffles one raw column at a time in the validation rows and measures how
much ROC AUC falls, which is the honest one (it sees data the model did not train on).
Encoded columns are summed back to the raw column they came from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_selection import mutual_info_classif
from sklearn.metrics import roc_auc_score

from mlprod.training._selection import _ranker

MI_ROWS = 5000
PERMUTATION_REPEATS = 3


def _per_column(
    values: np.ndarray, names: Sequence[str], source: Callable[[str], str]
) -> dict[str, float]:
    totals: dict[str, float] = {}
    for name, value in zip(names, values, strict=True):
        column = source(name)
        totals[column] = totals.get(column, 0.0) + float(value)
    return totals


def rank_features(
    transformer: Any,
    train: pd.DataFrame,
    y_train: np.ndarray,
    validation: pd.DataFrame,
    y_val: np.ndarray,
    *,
    seed: int,
) -> list[dict[str, Any]]:
    """One row per raw column, most useful first (by permutation importance).

    `transformer` is the fitted FeatureTransformer; frames hold raw columns.

    Example::

        rows = rank_features(transformer, df_train, y_train, df_val, y_val, seed=0)
        rows[0]["column"], rows[0]["permutation_importance"]
    """
    names = list(transformer.feature_names_)
    X_train = transformer.transform(train)
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(X_train), min(MI_ROWS, len(X_train)), replace=False)
    mi = mutual_info_classif(X_train[sample], y_train[sample], random_state=seed)
    model = _ranker(seed).fit(X_train, y_train)
    gains = np.asarray(model.feature_importances_, dtype=float)
    mutual = _per_column(mi, names, transformer.source_column)
    tree = _per_column(gains / (gains.sum() or 1.0), names, transformer.source_column)
    permutation = _permutation(transformer, model, validation, y_val, rng)
    rows: list[dict[str, Any]] = [
        {
            "column": column,
            "mutual_info": round(mutual.get(column, 0.0), 6),
            "tree_importance": round(tree.get(column, 0.0), 6),
            "permutation_importance": round(drop, 6),
            "permutation_std": round(spread, 6),
        }
        for column, (drop, spread) in permutation.items()
    ]
    rows.sort(key=lambda r: (-float(r["permutation_importance"]), -float(r["tree_importance"])))
    for position, row in enumerate(rows, 1):
        row["rank"] = position
    return rows


def _permutation(
    transformer: Any,
    model: Any,
    frame: pd.DataFrame,
    y: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, tuple[float, float]]:
    """Mean and spread of the ROC AUC drop when each raw column is shuffled."""
    frame = frame.reset_index(drop=True)
    base = float(roc_auc_score(y, model.predict_proba(transformer.transform(frame))[:, 1]))
    found: dict[str, tuple[float, float]] = {}
    for column in transformer.columns_:
        drops = []
        for _ in range(PERMUTATION_REPEATS):
            shuffled = frame.copy()
            shuffled[column] = frame[column].to_numpy()[rng.permutation(len(frame))]
            scores = model.predict_proba(transformer.transform(shuffled))[:, 1]
            drops.append(base - float(roc_auc_score(y, scores)))
        found[column] = (float(np.mean(drops)), float(np.std(drops)))
    return found

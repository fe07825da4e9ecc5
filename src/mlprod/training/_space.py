"""Search spaces: a sensible default for every catalogue algorithm, overridable per candidate.

Spaces are written in the spec's own grammar (``[low, high]``, ``[low, high, log]``,
``{choices: [...]}``) so the defaults read exactly like what a user would type to change
them, and `mlprod runs show` can print either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlprod.spec import CandidateSpec, Dimension, parse_dimension
from mlprod.training._catalogue import check_params, tunable_part

DEFAULT_SPACES: Mapping[str, Mapping[str, Any]] = {
    "logistic_regression": {"C": [1e-3, 100.0, "log"]},
    "random_forest": {
        "n_estimators": [100, 400],
        "min_samples_leaf": [1, 50, "log"],
        "max_features": [0.1, 1.0],
    },
    "hist_gbm": {
        "learning_rate": [0.01, 0.3, "log"],
        "max_leaf_nodes": [8, 128, "log"],
        "min_samples_leaf": [5, 200, "log"],
        "l2_regularization": [1e-6, 10.0, "log"],
    },
    "lightgbm": {
        "num_leaves": [8, 256, "log"],
        "learning_rate": [0.01, 0.3, "log"],
        "min_child_samples": [5, 200, "log"],
        "subsample": [0.5, 1.0],
        "colsample_bytree": [0.4, 1.0],
        "reg_lambda": [1e-6, 10.0, "log"],
    },
    "xgboost": {
        "max_depth": [2, 10],
        "learning_rate": [0.01, 0.3, "log"],
        "min_child_weight": [0.01, 20.0, "log"],
        "subsample": [0.5, 1.0],
        "colsample_bytree": [0.4, 1.0],
        "reg_lambda": [1e-6, 10.0, "log"],
    },
    "svm": {"C": [0.01, 100.0, "log"], "gamma": [1e-4, 1.0, "log"]},
    "mlp": {
        "width": [16, 256, "log"],
        "depth": [1, 3],
        "dropout": [0.0, 0.5],
        "learning_rate": [1e-4, 1e-2, "log"],
        "weight_decay": [1e-6, 1e-2, "log"],
    },
}
GRID_POINTS = 4  # values per range under the grid sampler


def search_space(candidate: CandidateSpec, index: int = 0) -> dict[str, Dimension]:
    """The dimensions tuned for `candidate`: its own `search`, else the default space.

    Fixed `params` are never tuned. Names are checked against the estimator before any
    trial runs, so a typo fails in a second, naming ``candidates[i].search.<name>``.

    Example::

        space = search_space(CandidateSpec(type="lightgbm", search={"num_leaves": [8, 64]}))
        space["num_leaves"].high   # 64.0
    """
    raw = dict(candidate.search) if candidate.search else dict(DEFAULT_SPACES[candidate.type])
    for fixed in candidate.params:
        raw.pop(fixed, None)
    target = tunable_part(candidate.type)
    check_params(candidate.type, target, raw, where=f"candidates[{index}].search")
    return {name: parse_dimension(name, value) for name, value in raw.items()}


def sample(trial: Any, space: Mapping[str, Dimension]) -> dict[str, Any]:
    """Draw one value per dimension from an Optuna trial."""
    params: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.kind == "choice":
            params[name] = trial.suggest_categorical(name, list(dim.choices))
        elif dim.kind == "int":
            params[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    return params


def grid(space: Mapping[str, Dimension]) -> dict[str, list[Any]]:
    """The grid sampler's values: choices as given, ranges as `GRID_POINTS` spaced values."""
    values: dict[str, list[Any]] = {}
    for name, dim in space.items():
        if dim.kind == "choice":
            values[name] = list(dim.choices)
            continue
        spaced = (
            np.geomspace(dim.low, dim.high, GRID_POINTS)
            if dim.log
            else np.linspace(dim.low, dim.high, GRID_POINTS)
        )
        if dim.kind == "int":
            values[name] = sorted({round(float(v)) for v in spaced})
        else:
            values[name] = [float(v) for v in spaced]
    return values


def describe_space(space: Mapping[str, Dimension]) -> dict[str, Any]:
    """The space back in the spec's grammar, for the run record."""
    shown: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.kind == "choice":
            shown[name] = {"choices": list(dim.choices)}
            continue
        cast = int if dim.kind == "int" else float
        shown[name] = [cast(dim.low), cast(dim.high), *(["log"] if dim.log else [])]
    return shown

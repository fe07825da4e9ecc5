"""XGBoost fitted by its Spark estimator: training rows beyond one machine, an ordinary model back.

`SparkXGBClassifier` runs `workers` XGBoost tasks on the cluster, each on its share of
the rows Spark holds, and syncs the trees between them (XGBoost's collective). What
comes back is its booster: it goes into an `XGBClassifier` and from there into the
bundle in XGBoost's own format, so the version loads, serves and scores like any
locally trained XGBoost model.

A multiclass target (labels coded 0..k-1 in `classes` order, as for local training)
gets XGBoost's softmax objective: the Spark estimator counts the distinct labels and
sets ``multi:softprob`` with that ``num_class``. Counting only matches the codes when
every class is among the training rows, so a missing class is refused before fitting,
as a local XGBoost fit refuses it.

Example::

    estimator, spark_model = fit_xgboost_on_spark(make_estimator("xgboost", {}, 42), X, y,
                                                  master="local[2]", workers=2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlprod.data import spark_session
from mlprod.training._fit import multiclass_metric

_SPARK_PARAMS = (
    "n_estimators",
    "learning_rate",
    "max_depth",
    "subsample",
    "colsample_bytree",
    "min_child_weight",
    "reg_lambda",
    "reg_alpha",
    "gamma",
    "tree_method",
    "max_bin",
    "random_state",
)


def fit_xgboost_on_spark(
    estimator: Any, X: np.ndarray, y: np.ndarray, *, master: str | None, workers: int
) -> tuple[Any, Any]:
    """`estimator` (an unfitted XGBClassifier) fitted on Spark; also the Spark model itself."""
    from xgboost import XGBClassifier
    from xgboost.spark import SparkXGBClassifier

    _check_labels(y)
    multiclass_metric(estimator, y)  # the same eval metric a local fit would record
    spark = spark_session(master, app="mlprod-train")
    rows = pd.DataFrame({"features": list(np.asarray(X, dtype=float)), "label": y.astype(float)})
    frame = spark.createDataFrame(rows).repartition(workers)
    params = estimator.get_params()
    chosen = {k: params[k] for k in _SPARK_PARAMS if params.get(k) is not None}
    spark_estimator = SparkXGBClassifier(
        features_col="features", label_col="label", num_workers=workers, **chosen
    )
    spark_model = spark_estimator.fit(frame)
    fitted = XGBClassifier(**params)
    fitted.load_model(bytearray(spark_model.get_booster().save_raw(raw_format="ubj")))
    return fitted, spark_model


def _check_labels(y: np.ndarray) -> None:
    """The labels are 0..k-1 with every code present: Spark infers k from their count."""
    codes = np.unique(y)
    if not np.array_equal(codes, np.arange(codes.size)):
        missing = sorted(set(range(int(codes.max()) + 1)) - {int(c) for c in codes})
        raise ValueError(
            f"the training rows lack class codes {missing} (labels are coded 0..k-1): "
            "XGBoost on Spark infers the number of classes from the labels it sees; "
            "use a stratified split or more rows so every class is in the training rows"
        )

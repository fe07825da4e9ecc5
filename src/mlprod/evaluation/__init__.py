"""Offline evaluation: metrics with intervals, threshold, gates, charts and the report.

The threshold is chosen on validation data (`choose_threshold`); the metrics, gates,
charts and report describe the test set, which nothing upstream has seen.

    >>> import numpy as np
    >>> from mlprod.evaluation import evaluate
    >>> metrics = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), 0.5)
    >>> metrics["roc_auc"].value
    0.75
"""

from mlprod.evaluation._charts import build_charts
from mlprod.evaluation._compare import compare_metrics, compare_multiclass_metrics
from mlprod.evaluation._experiment_charts import experiment_charts, overlaid_curves
from mlprod.evaluation._gates import GateResult, check_gates
from mlprod.evaluation._metrics import PAIRED_METRICS, MetricValue, evaluate, paired_bootstrap
from mlprod.evaluation._multiclass import (
    MULTICLASS_METRIC_NAMES,
    class_key,
    evaluate_multiclass,
)
from mlprod.evaluation._multiclass_charts import build_multiclass_charts, overlaid_multiclass
from mlprod.evaluation._profile_report import write_profile_report
from mlprod.evaluation._report import write_page, write_report
from mlprod.evaluation._telemetry_charts import telemetry_charts
from mlprod.evaluation._threshold import choose_threshold
from mlprod.evaluation._value import business_value, value_of_counts

__all__ = [
    "MULTICLASS_METRIC_NAMES",
    "PAIRED_METRICS",
    "GateResult",
    "MetricValue",
    "build_charts",
    "build_multiclass_charts",
    "business_value",
    "check_gates",
    "choose_threshold",
    "class_key",
    "compare_metrics",
    "compare_multiclass_metrics",
    "evaluate",
    "evaluate_multiclass",
    "experiment_charts",
    "overlaid_curves",
    "overlaid_multiclass",
    "paired_bootstrap",
    "telemetry_charts",
    "value_of_counts",
    "write_page",
    "write_profile_report",
    "write_report",
]

"""The run report's charts for a multiclass model: a k x k confusion matrix and ROC curves.

Each class gets its one-vs-rest ROC curve (its probability against every other class),
the curves whose macro average is the report's roc_auc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlprod.evaluation._charts import _LAYOUT, _importance, _thin
from mlprod.evaluation._multiclass import check_multiclass_inputs

if TYPE_CHECKING:
    from plotly.graph_objects import Figure


def _confusion(y: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> Figure:
    import plotly.graph_objects as go

    k = len(labels)
    counts = np.bincount(y * k + predicted, minlength=k * k).reshape(k, k)
    fig = go.Figure(
        go.Heatmap(
            z=counts.tolist(),
            x=[f"predicted {label}" for label in labels],
            y=[f"actual {label}" for label in labels],
            text=[[f"{c:,}" for c in row] for row in counts.tolist()],
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    size = max(_LAYOUT["height"], 60 * k + 140)
    fig.update_layout(
        title="Confusion matrix (label: the most probable class)", **{**_LAYOUT, "height": size}
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def _roc(y: np.ndarray, p: np.ndarray, labels: Sequence[str]) -> Figure:
    import plotly.graph_objects as go
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = go.Figure()
    aucs = []
    for c, label in enumerate(labels):
        fpr, tpr, _ = roc_curve(y == c, p[:, c])
        fpr, tpr = _thin(fpr, tpr)
        auc = float(roc_auc_score(y == c, p[:, c]))
        aucs.append(auc)
        fig.add_scatter(x=fpr, y=tpr, mode="lines", name=f"{label} vs rest (AUC = {auc:.3f})")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash"})
    fig.update_layout(
        title=f"ROC curves, one vs rest (macro AUC = {np.mean(aucs):.3f})",
        xaxis_title="False positive rate",
        yaxis_title="True positive rate (recall)",
        **_LAYOUT,
    )
    return fig


def build_multiclass_charts(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Any],
    importance: Mapping[str, float] | None = None,
) -> dict[str, Figure]:
    """``confusion`` (k x k), ``roc`` (one curve per class) and ``feature_importance``.

    `y_true` holds positions in `classes`; `proba` the n x k class probabilities.

    >>> import numpy as np
    >>> proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    >>> sorted(build_multiclass_charts(np.array([0, 1, 2, 1]), proba, ["a", "b", "c"]))
    ['confusion', 'roc']
    """
    y, p = check_multiclass_inputs(y_true, proba, classes, "charts")
    labels = [str(c) for c in classes]
    charts = {
        "confusion": _confusion(y, np.argmax(p, axis=1), labels),
        "roc": _roc(y, p, labels),
    }
    if importance:
        charts["feature_importance"] = _importance(importance)
    return charts

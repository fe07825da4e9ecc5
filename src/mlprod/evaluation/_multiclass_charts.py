"""The run report's charts for a multiclass model: a k x k confusion matrix and ROC curves.

Each class gets its one-vs-rest ROC curve (its probability against every other class),
the curves whose macro average is the report's roc_auc. `overlaid_multiclass` draws the
same two for several runs at once, for `mlprod runs compare` and the dashboard.
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


def overlaid_multiclass(
    runs: Mapping[str, tuple[np.ndarray, np.ndarray]], classes: Sequence[Any]
) -> dict[str, Figure]:
    """Several multiclass runs' test sets, drawn for comparison.

    ``confusion_overlay``: each run's confusion matrix side by side, coloured by the share
    of each actual class (so test sets of different sizes compare), the counts written in.
    ``roc_overlay``: one panel per class, every run's one-vs-rest ROC curve in it, a run in
    the same colour throughout. `runs` maps a label to (labels 0..k-1, n x k probabilities).
    """
    checked = {
        name: check_multiclass_inputs(y, p, classes, "comparison charts")
        for name, (y, p) in runs.items()
    }
    labels = [str(c) for c in classes]
    return {
        "confusion_overlay": _confusions(checked, labels),
        "roc_overlay": _class_rocs(checked, labels),
    }


def _confusions(runs: Mapping[str, tuple[np.ndarray, np.ndarray]], labels: list[str]) -> Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    k = len(labels)
    fig = make_subplots(rows=1, cols=len(runs), subplot_titles=list(runs), shared_yaxes=True)
    for col, (y, p) in enumerate(runs.values(), start=1):
        counts = np.bincount(y * k + np.argmax(p, axis=1), minlength=k * k).reshape(k, k)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        heat = go.Heatmap(
            z=shares.tolist(),
            x=[f"predicted {label}" for label in labels],
            y=[f"actual {label}" for label in labels],
            text=[[f"{c:,}" for c in row] for row in counts.tolist()],
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            showscale=False,
        )
        fig.add_trace(heat, row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    size = max(_LAYOUT["height"], 60 * k + 140)
    fig.update_layout(
        title="Confusion matrices (colour: share of the actual class)",
        **{**_LAYOUT, "height": size},
    )
    return fig


def _class_rocs(runs: Mapping[str, tuple[np.ndarray, np.ndarray]], labels: list[str]) -> Figure:
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots
    from sklearn.metrics import roc_auc_score, roc_curve

    cols = min(len(labels), 3)
    rows = -(-len(labels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{c} vs rest" for c in labels])
    palette = qualitative.Plotly
    for r, (name, (y, p)) in enumerate(runs.items()):
        colour = palette[r % len(palette)]
        macro = float(np.mean([roc_auc_score(y == c, p[:, c]) for c in range(len(labels))]))
        for c, label in enumerate(labels):
            fpr, tpr, _ = roc_curve(y == c, p[:, c])
            fpr, tpr = _thin(fpr, tpr)
            auc = float(roc_auc_score(y == c, p[:, c]))
            fig.add_scatter(
                x=fpr, y=tpr, mode="lines", line={"color": colour}, legendgroup=name,
                name=f"{name} (macro AUC {macro:.3f})", showlegend=c == 0,
                hovertemplate=f"{name}, {label} vs rest (AUC {auc:.3f})<extra></extra>",
                row=c // cols + 1, col=c % cols + 1,
            )  # fmt: skip
    height = max(_LAYOUT["height"], 300 * rows + 120)
    fig.update_layout(
        title="ROC curves per class, one vs rest (test sets)",
        **{**_LAYOUT, "height": height},
    )
    fig.update_xaxes(title_text="False positive rate", range=[0, 1])
    fig.update_yaxes(title_text="True positive rate", range=[0, 1])
    return fig

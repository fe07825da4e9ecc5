"""Evaluation charts as plotly figures, small enough to inline in a report.

Curves are thinned and histograms are pre-binned, so a figure's size does not grow with
the number of test rows. plotly and sklearn are imported inside the functions because
both are slow to import and most callers of `mlprod.evaluation` never draw a chart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mlprod.evaluation._metrics import check_binary_inputs, check_evaluable

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

_MAX_POINTS = 2000
_TOP_FEATURES = 30
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
}


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    """Keep at most _MAX_POINTS evenly spaced points (always the first and last)."""
    size = len(arrays[0])
    if size <= _MAX_POINTS:
        return list(arrays)
    keep = np.unique(np.linspace(0, size - 1, _MAX_POINTS).round().astype(int))
    return [a[keep] for a in arrays]


def _operating_point(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(false positive rate, recall, precision) at the threshold."""
    predicted = s >= threshold
    tp = int(np.count_nonzero(predicted & (y == 1)))
    fp = int(np.count_nonzero(predicted & (y == 0)))
    positives = int(y.sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    return fp / (y.size - positives), tp / positives, precision


def _roc(y: np.ndarray, s: np.ndarray, threshold: float) -> Figure:
    import plotly.graph_objects as go
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    fpr, tpr = _thin(fpr, tpr)
    auc = float(roc_auc_score(y, s))
    op_fpr, op_tpr, _ = _operating_point(y, s, threshold)
    fig = go.Figure()
    fig.add_scatter(x=fpr, y=tpr, mode="lines", name=f"model (AUC = {auc:.3f})")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash"})
    fig.add_scatter(
        x=[op_fpr],
        y=[op_tpr],
        mode="markers",
        name=f"threshold {threshold:.3g}",
        marker={"size": 10},
    )
    fig.update_layout(
        title=f"ROC curve (AUC = {auc:.3f})",
        xaxis_title="False positive rate",
        yaxis_title="True positive rate (recall)",
        **_LAYOUT,
    )
    return fig


def _pr(y: np.ndarray, s: np.ndarray, threshold: float) -> Figure:
    import plotly.graph_objects as go
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, s, drop_intermediate=True)
    recall, precision = _thin(recall, precision)
    ap = float(average_precision_score(y, s))
    _, op_recall, op_precision = _operating_point(y, s, threshold)
    prevalence = float(y.mean())
    fig = go.Figure()
    fig.add_scatter(
        x=recall, y=precision, mode="lines", line={"shape": "hv"}, name=f"model (AP = {ap:.3f})"
    )
    fig.add_scatter(
        x=[0, 1],
        y=[prevalence, prevalence],
        mode="lines",
        line={"dash": "dash"},
        name=f"chance (prevalence {prevalence:.3f})",
    )
    fig.add_scatter(
        x=[op_recall],
        y=[op_precision],
        mode="markers",
        name=f"threshold {threshold:.3g}",
        marker={"size": 10},
    )
    fig.update_layout(
        title=f"Precision-recall curve (AP = {ap:.3f})",
        xaxis_title="Recall",
        yaxis_title="Precision",
        **_LAYOUT,
    )
    return fig


def _confusion(y: np.ndarray, s: np.ndarray, threshold: float) -> Figure:
    import plotly.graph_objects as go

    predicted = s >= threshold
    counts = [
        [int(np.count_nonzero(~predicted & (y == 0))), int(np.count_nonzero(predicted & (y == 0)))],
        [int(np.count_nonzero(~predicted & (y == 1))), int(np.count_nonzero(predicted & (y == 1)))],
    ]
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=["predicted 0", "predicted 1"],
            y=["actual 0", "actual 1"],
            text=[[f"{c:,}" for c in row] for row in counts],
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    fig.update_layout(title=f"Confusion matrix at threshold {threshold:.4g}", **_LAYOUT)
    fig.update_yaxes(autorange="reversed")
    return fig


def _calibration(y: np.ndarray, s: np.ndarray) -> Figure:
    """Reliability curve over 10 quantile bins: equal rows per point, so each is as sure."""
    import plotly.graph_objects as go

    edges = np.unique(np.quantile(s, np.linspace(0, 1, 11)))
    bins = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = np.bincount(bins)
    used = rows > 0
    mean_score = np.bincount(bins, weights=s)[used] / rows[used]
    observed = np.bincount(bins, weights=y.astype(float))[used] / rows[used]
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash"}, name="perfectly calibrated"
    )
    fig.add_scatter(
        x=mean_score,
        y=observed,
        mode="lines+markers",
        name="model",
        customdata=rows[used],
        hovertemplate="mean score %{x:.3f}<br>"
        "positive rate %{y:.3f}<br>%{customdata} rows<extra></extra>",
    )
    fig.update_layout(
        title="Calibration (10 quantile bins)",
        xaxis_title="Mean predicted probability",
        yaxis_title="Observed positive rate",
        **_LAYOUT,
    )
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return fig


def _distribution(y: np.ndarray, s: np.ndarray, threshold: float) -> Figure:
    import plotly.graph_objects as go

    edges = np.linspace(0.0, 1.0, 51)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for label, name in ((0, "negative (0)"), (1, "positive (1)")):
        counts, _ = np.histogram(s[y == label], bins=edges)
        fig.add_bar(x=centres, y=counts, width=edges[1] - edges[0], name=name, opacity=0.6)
    fig.add_vline(x=threshold, line_dash="dash", annotation_text=f"threshold {threshold:.3g}")
    fig.update_layout(
        title="Score distribution by class",
        barmode="overlay",
        xaxis_title="Score (predicted probability)",
        yaxis_title="Rows",
        **_LAYOUT,
    )
    return fig


def _importance(importance: Mapping[str, float]) -> Figure:
    import plotly.graph_objects as go

    top = sorted(importance.items(), key=lambda item: item[1], reverse=True)[:_TOP_FEATURES]
    top.reverse()  # plotly draws the first bar at the bottom; put the largest on top
    fig = go.Figure(
        go.Bar(x=[float(v) for _, v in top], y=[str(k) for k, _ in top], orientation="h")
    )
    layout = {**_LAYOUT, "height": max(300, 24 * len(top) + 120)}
    layout["margin"] = {**_LAYOUT["margin"], "l": 160}
    fig.update_layout(
        title=f"Feature importance (top {len(top)})", xaxis_title="Importance", **layout
    )
    return fig


def build_charts(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    importance: Mapping[str, float] | None = None,
) -> dict[str, Figure]:
    """The report's charts for test labels and scores, keyed by name.

    Keys: ``roc``, ``pr``, ``confusion`` and ``score_distribution`` (at `threshold`),
    ``calibration``, and ``feature_importance`` when `importance` is non-empty.

    >>> import numpy as np
    >>> charts = build_charts(np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.9]), 0.5)
    >>> sorted(charts)
    ['calibration', 'confusion', 'pr', 'roc', 'score_distribution']
    """
    y, s = check_binary_inputs(y_true, scores, "charts")
    check_evaluable(y, s)
    threshold = float(threshold)
    charts = {
        "roc": _roc(y, s, threshold),
        "pr": _pr(y, s, threshold),
        "confusion": _confusion(y, s, threshold),
        "calibration": _calibration(y, s),
        "score_distribution": _distribution(y, s, threshold),
    }
    if importance:
        charts["feature_importance"] = _importance(importance)
    return charts

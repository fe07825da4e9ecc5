"""Charts of an experiment: optimisation history, parameter importance, training curves,
the candidates side by side, and two runs' ROC and PR curves overlaid.

Inputs are plain records (what the store keeps), so a later dashboard draws the same
figures from the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlprod.evaluation._charts import _LAYOUT, _thin

if TYPE_CHECKING:
    from plotly.graph_objects import Figure


def optimisation_history(trials: Sequence[Mapping[str, Any]]) -> Figure:
    """Each trial's score by trial number, per candidate, with the best so far as a line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name in sorted({str(t["candidate"]) for t in trials}):
        rows = sorted((t for t in trials if t["candidate"] == name), key=lambda t: t["number"])
        done = [t for t in rows if t["state"] == "complete" and t["value"] is not None]
        pruned = [t for t in rows if t["state"] == "pruned" and t["fold_scores"]]
        fig.add_scatter(
            x=[t["number"] for t in done], y=[t["value"] for t in done],
            mode="markers", name=f"{name} trials",
        )  # fmt: skip
        if pruned:
            fig.add_scatter(
                x=[t["number"] for t in pruned],
                y=[float(np.mean(t["fold_scores"])) for t in pruned],
                mode="markers", marker={"symbol": "x"}, name=f"{name} pruned",
            )  # fmt: skip
        best: list[float] = (
            np.maximum.accumulate([t["value"] for t in done]).tolist() if done else []
        )
        fig.add_scatter(
            x=[t["number"] for t in done], y=best, mode="lines",
            line={"shape": "hv"}, name=f"{name} best so far",
        )  # fmt: skip
    fig.update_layout(
        title="Optimisation history (cross-validated score on training rows)",
        xaxis_title="Trial",
        yaxis_title="Score (higher is better)",
        **_LAYOUT,
    )
    return fig


def param_importance_chart(summaries: Mapping[str, Mapping[str, Any]]) -> Figure:
    """fANOVA importance of each tuned parameter, one group of bars per candidate."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, summary in summaries.items():
        found = dict(summary.get("param_importance") or {})
        ordered = sorted(found.items(), key=lambda kv: kv[1])
        fig.add_bar(
            x=[v for _, v in ordered], y=[k for k, _ in ordered], orientation="h", name=name
        )
    layout = {**_LAYOUT, "margin": {**_LAYOUT["margin"], "l": 160}}
    fig.update_layout(
        title="Parameter importance (share of the score's variance)",
        xaxis_title="Importance",
        barmode="group",
        **layout,
    )
    return fig


def training_curves(curves: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Validation loss (left) and metric (right) against rounds, one line per candidate."""
    from plotly.subplots import make_subplots

    first = next(iter(curves.values()), {})
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"validation {first.get('loss_name', 'loss')}",
            f"validation {first.get('metric_name', 'metric')}",
        ),
    )
    for name, curve in curves.items():
        fig.add_scatter(x=curve["x"], y=curve["loss"], mode="lines", name=f"{name} loss",
                        row=1, col=1)  # fmt: skip
        fig.add_scatter(x=curve["x"], y=curve["metric"], mode="lines", name=f"{name} metric",
                        row=1, col=2)  # fmt: skip
    fig.update_layout(title="Training curves (validation rows)", **_LAYOUT)
    fig.update_xaxes(title_text="round / iteration / trees")
    return fig


def candidate_comparison(candidates: Sequence[Mapping[str, Any]]) -> Figure:
    """Every candidate's validation score, the winner highlighted."""
    import plotly.graph_objects as go

    scored = [c for c in candidates if c.get("validation_score") is not None]
    best = max((c["validation_score"] for c in scored), default=None)
    colours = ["#1f77b4" if c["validation_score"] != best else "#2ca02c" for c in scored]
    fig = go.Figure(
        go.Bar(
            x=[str(c["name"]) for c in scored],
            y=[c["validation_score"] for c in scored],
            marker_color=colours,
            text=[f"{c['validation_score']:.4f}" for c in scored],
        )
    )
    fig.update_layout(
        title="Candidates on validation data (the winner in green)",
        yaxis_title="Validation score",
        **_LAYOUT,
    )
    return fig


def experiment_charts(
    trials: Sequence[Mapping[str, Any]],
    summaries: Mapping[str, Mapping[str, Any]],
    curves: Mapping[str, Mapping[str, Any]],
    candidates: Sequence[Mapping[str, Any]],
) -> dict[str, Figure]:
    """The report's experiment charts, each only when there is something to draw.

    Keys: ``optimisation_history``, ``param_importance``, ``training_curves``,
    ``candidate_comparison``.
    """
    charts: dict[str, Figure] = {}
    if trials:
        charts["optimisation_history"] = optimisation_history(trials)
    if any(s.get("param_importance") for s in summaries.values()):
        charts["param_importance"] = param_importance_chart(summaries)
    if curves:
        charts["training_curves"] = training_curves(curves)
    if len(candidates) > 1:
        charts["candidate_comparison"] = candidate_comparison(candidates)
    return charts


def overlaid_curves(runs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Figure]:
    """ROC and PR curves of several runs' test scores on one pair of charts.

    `runs` maps a label to (0/1 labels, scores).
    """
    import plotly.graph_objects as go
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    roc, pr = go.Figure(), go.Figure()
    for label, (y, s) in runs.items():
        fpr, tpr, _ = roc_curve(y, s)
        fpr, tpr = _thin(fpr, tpr)
        roc.add_scatter(x=fpr, y=tpr, mode="lines", name=f"{label} (AUC {roc_auc_score(y, s):.3f})")
        precision, recall, _ = precision_recall_curve(y, s)
        recall, precision = _thin(recall, precision)
        ap = average_precision_score(y, s)
        pr.add_scatter(x=recall, y=precision, mode="lines", line={"shape": "hv"},
                       name=f"{label} (AP {ap:.3f})")  # fmt: skip
    roc.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash"}, name="chance")
    roc.update_layout(title="ROC curves (test sets)", xaxis_title="False positive rate",
                      yaxis_title="True positive rate", **_LAYOUT)  # fmt: skip
    pr.update_layout(title="Precision-recall curves (test sets)", xaxis_title="Recall",
                     yaxis_title="Precision", **_LAYOUT)  # fmt: skip
    return {"roc_overlay": roc, "pr_overlay": pr}

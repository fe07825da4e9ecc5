"""Charts of a network's training telemetry: losses, per-layer statistics, its graph.

The input is the curve a run stores (``telemetry`` beside the epochs' losses), so the
report and the dashboard draw the same figures from the same record, while training runs
and after it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlprod.evaluation._charts import _LAYOUT

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

_LAYER_CHARTS = (
    ("activations", "activation", "Activations per layer (mean and variance on probe rows)"),
    ("gradients", "gradient", "Weight gradients per layer (mean and variance, last step)"),
)


def telemetry_charts(name: str, curve: Mapping[str, Any]) -> dict[str, Figure]:
    """Figures keyed ``<name> training``, ``<name> activations``, ...; {} without telemetry."""
    telemetry = curve.get("telemetry")
    if not telemetry or not telemetry.get("epochs"):
        return {}
    epochs = telemetry["epochs"]
    charts = {
        f"{name} training": _losses(name, epochs, curve.get("metric_name", "metric")),
        f"{name} network": network_drawing(name, telemetry.get("graph", [])),
    }
    if any(e["layers"] for e in epochs):
        for key, prefix, title in _LAYER_CHARTS:
            charts[f"{name} {key}"] = _layer_stat(epochs, prefix, f"{name}: {title}")
        charts[f"{name} updates"] = _update_ratio(name, epochs)
    return charts


def _losses(name: str, epochs: list[dict[str, Any]], metric: str) -> Figure:
    from plotly.subplots import make_subplots

    x = [e["epoch"] for e in epochs]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, label in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        fig.add_scatter(x=x, y=[e[key] for e in epochs], mode="lines+markers", name=label)
    for key, label in (("train_metric", "training"), ("val_metric", "validation")):
        fig.add_scatter(
            x=x,
            y=[e[key] for e in epochs],
            mode="lines",
            line={"dash": "dot"},
            name=f"{label} {metric}",
            secondary_y=True,
        )
    fig.update_layout(title=f"{name}: loss and {metric} per epoch", xaxis_title="Epoch", **_LAYOUT)
    fig.update_yaxes(title_text="Log loss", secondary_y=False)
    fig.update_yaxes(title_text=metric, secondary_y=True)
    return fig


def _layer_names(epochs: list[dict[str, Any]]) -> list[str]:
    return [layer["name"] for layer in next(e["layers"] for e in epochs if e["layers"])]


def _layer_stat(epochs: list[dict[str, Any]], prefix: str, title: str) -> Figure:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("mean", "variance"))
    measured = [e for e in epochs if e["layers"]]
    x = [e["epoch"] for e in measured]
    for i, layer in enumerate(_layer_names(epochs)):
        for col, stat in ((1, "mean"), (2, "var")):
            fig.add_scatter(
                x=x,
                y=[e["layers"][i][f"{prefix}_{stat}"] for e in measured],
                mode="lines",
                name=layer,
                legendgroup=layer,
                showlegend=col == 1,
                row=1,
                col=col,
            )
    fig.update_layout(title=title, **_LAYOUT)
    fig.update_xaxes(title_text="Epoch")
    return fig


def _update_ratio(name: str, epochs: list[dict[str, Any]]) -> Figure:
    import plotly.graph_objects as go

    measured = [e for e in epochs if e["layers"]]
    fig = go.Figure()
    for i, layer in enumerate(_layer_names(epochs)):
        fig.add_scatter(
            x=[e["epoch"] for e in measured],
            y=[max(e["layers"][i]["update_ratio"], 1e-12) for e in measured],
            mode="lines",
            name=layer,
        )
    fig.add_hline(y=1e-3, line={"dash": "dash"}, annotation_text="1e-3")
    fig.update_layout(
        title=f"{name}: update-to-weight ratio per layer (std of the step / std of the weights)",
        xaxis_title="Epoch",
        yaxis_title="Ratio",
        yaxis_type="log",
        **_LAYOUT,
    )
    return fig


def network_drawing(name: str, graph: list[dict[str, Any]]) -> Figure:
    """The network as a layered diagram: one box per module, input at the top."""
    import plotly.graph_objects as go

    fig = go.Figure()
    count = len(graph)
    for i, node in enumerate(graph):
        top = count - i
        fig.add_shape(
            type="rect",
            x0=0.2,
            x1=0.8,
            y0=top - 0.35,
            y1=top + 0.35,
            line={"color": "#4c6ef5"},
            fillcolor="#edf2ff",
        )
        label = f"<b>{node['label']}</b>" + (f"  {node['detail']}" if node.get("detail") else "")
        fig.add_annotation(x=0.5, y=top, text=label, showarrow=False)
        if i + 1 < count:
            fig.add_annotation(
                x=0.5, y=top - 0.65, ax=0.5, ay=top - 0.35,
                xref="x", yref="y", axref="x", ayref="y",
                showarrow=True, arrowhead=2, text="",
            )  # fmt: skip
    layout = {**_LAYOUT, "height": max(260, 60 * count)}
    fig.update_layout(title=f"{name}: network graph", showlegend=False, **layout)
    fig.update_xaxes(visible=False, range=[0, 1])
    fig.update_yaxes(visible=False, range=[0.4, count + 0.6])
    return fig

"""The dashboard's charts, as plotly figures in JSON: drawn in the browser by plotly.js.

Built from the monitoring report the page shows, so a chart and the numbers beside it
always come from the same windows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprod.monitoring import MonitoringReport

LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 340,
    "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
    "legend": {"orientation": "h", "y": -0.2},
}


def _period(report: MonitoringReport) -> dict[str, Any]:
    """A date axis spanning the report's period, so one window still shows in context."""
    return {"type": "date", "range": [report.since, report.until]}


def _window_ms(report: MonitoringReport) -> float:
    from mlprod._time import parse_duration

    return float(parse_duration(report.window).total_seconds() * 1000)


# One colour per class, by its position in the version's classes, the same in every chart.
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _colour(index: int, alpha: float = 1.0) -> str:
    hex_colour = CLASS_COLOURS[index % len(CLASS_COLOURS)]
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _json(figure: Any) -> dict[str, Any]:
    """Plain JSON (no numpy) for the page's script tag."""
    data: dict[str, Any] = json.loads(figure.to_json())
    return data


def performance_figure(report: MonitoringReport, metric: str) -> dict[str, Any]:
    """`metric` per window and version, with its 95% band; estimated windows hollow."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for version in sorted({row.version for row in report.performance}):
        rows = [
            r
            for r in report.performance
            if r.version == version and r.figure(metric)[0] is not None
        ]
        if not rows:
            continue
        x = [r.window_start for r in rows]
        low = [r.figure(metric)[1] for r in rows]
        high = [r.figure(metric)[2] for r in rows]
        figure.add_scatter(
            x=x + x[::-1],
            y=high + low[::-1],
            fill="toself",
            opacity=0.15,
            line={"width": 0},
            showlegend=False,
            hoverinfo="skip",
            name=f"v{version} 95%",
        )
        figure.add_scatter(
            x=x,
            y=[r.figure(metric)[0] for r in rows],
            mode="lines+markers",
            name=f"v{version}",
            marker={"symbol": ["circle-open" if r.estimated else "circle" for r in rows]},
            customdata=[[r.n_labelled, "estimated" if r.estimated else "realized"] for r in rows],
            hovertemplate="%{y:.3f} (%{customdata[1]}, %{customdata[0]} labelled)<extra></extra>",
        )
    figure.update_layout(
        title=f"live {metric} (hollow: estimated from scores)",
        yaxis={"range": [0, 1]},
        xaxis=_period(report),
        **LAYOUT,
    )
    return _json(figure)


def traffic_figure(report: MonitoringReport) -> dict[str, Any]:
    """Scored records per window, stacked by version."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for version in sorted({row.version for row in report.traffic}):
        rows = [r for r in report.traffic if r.version == version]
        figure.add_bar(
            x=[r.window_start for r in rows],
            y=[r.count for r in rows],
            name=f"v{version}",
            width=_window_ms(report) * 0.9,
            offset=0,
        )
    figure.update_layout(
        title="traffic per version", barmode="stack", xaxis=_period(report), **LAYOUT
    )
    return _json(figure)


def drift_figure(report: MonitoringReport, version: int | None) -> dict[str, Any]:
    """PSI per feature and window of `version`, as a heat map."""
    import plotly.graph_objects as go

    rows = [r for r in report.drift if r.version == version]
    windows = sorted({r.window_start for r in rows})
    features = sorted({r.feature for r in rows})
    psi = {(r.feature, r.window_start): r.psi for r in rows}
    z = [[psi.get((f, w)) for w in windows] for f in features]
    figure = go.Figure(
        go.Heatmap(
            x=windows,
            y=features,
            z=z,
            colorscale="YlOrRd",
            zmin=0,
            zmax=0.3,
            colorbar={"title": "PSI"},
        )
    )
    title = f"drift of v{version} (PSI per window)" if version else "drift"
    height = 120 + 22 * max(len(features), 4)
    figure.update_layout(title=title, xaxis=_period(report), **{**LAYOUT, "height": height})
    return _json(figure)


def class_figure(report: MonitoringReport, version: int, metric: str) -> dict[str, Any]:
    """A multiclass version's `metric` (precision or recall) per class and window, with 95% bands.

    Only realized windows have per-class figures; estimated ones are left out.
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    rows = [r for r in report.performance if r.version == version and r.classes]
    names = (rows[0].classes or []) if rows else []
    for index, name in enumerate(names):
        key = f"{metric}[{name}]"
        shown = [r for r in rows if r.figure(key)[0] is not None]
        if not shown:
            continue
        x = [r.window_start for r in shown]
        low = [r.figure(key)[1] for r in shown]
        high = [r.figure(key)[2] for r in shown]
        figure.add_scatter(
            x=x + x[::-1],
            y=high + low[::-1],
            mode="lines",
            fill="toself",
            fillcolor=_colour(index, 0.12),
            line={"width": 0},
            showlegend=False,
            hoverinfo="skip",
            legendgroup=name,
            name=f"{name} 95%",
        )
        figure.add_scatter(
            x=x,
            y=[r.figure(key)[0] for r in shown],
            mode="lines+markers",
            name=name,
            legendgroup=name,
            line={"color": _colour(index)},
            customdata=[[r.n_labelled] for r in shown],
            hovertemplate=f"{name}: %{{y:.3f}} (%{{customdata[0]}} labelled)<extra></extra>",
        )
    figure.update_layout(
        title=f"live {metric} per class of v{version}",
        yaxis={"range": [0, 1]},
        xaxis=_period(report),
        **LAYOUT,
    )
    return _json(figure)


def shares_figure(report: MonitoringReport, version: int) -> dict[str, Any]:
    """Each class's share of a multiclass version's answers per window; dashed: the reference."""
    import plotly.graph_objects as go

    rows = [r for r in report.drift if r.version == version and r.shares is not None]
    figure = go.Figure()
    classes = next((v.classes or [] for v in report.versions if v.version == version), [])
    bins = list(rows[-1].shares or {}) if rows else []
    names = [c for c in classes if c in bins] + [b for b in bins if b not in classes]
    for i, name in enumerate(names):
        colour = _colour(classes.index(name) if name in classes else len(classes) + i)
        shown = [r for r in rows if name in (r.shares or {})]
        x = [r.window_start for r in shown]
        figure.add_scatter(
            x=x,
            y=[(r.shares or {})[name] for r in shown],
            mode="lines+markers",
            name=name,
            legendgroup=name,
            line={"color": colour},
            hovertemplate=f"{name}: %{{y:.1%}} of answers<extra></extra>",
        )
        reference = (rows[-1].reference_shares or {}).get(name)
        if reference is not None:
            figure.add_scatter(
                x=[report.since, report.until],
                y=[reference, reference],
                mode="lines",
                name=f"{name} (reference)",
                legendgroup=name,
                showlegend=False,
                line={"color": colour, "dash": "dash", "width": 1},
                hovertemplate=f"{name}: %{{y:.1%}} on the test rows<extra></extra>",
            )
    figure.update_layout(
        title=f"class shares of v{version} (dashed: test rows at training)",
        yaxis={"range": [0, 1], "tickformat": ".0%"},
        xaxis=_period(report),
        **LAYOUT,
    )
    return _json(figure)

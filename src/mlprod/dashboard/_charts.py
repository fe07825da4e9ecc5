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

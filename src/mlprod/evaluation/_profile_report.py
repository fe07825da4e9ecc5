"""The data profile as a self-contained HTML page: tables of facts, then charts per column."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprod.evaluation._charts import _LAYOUT
from mlprod.evaluation._report import write_page

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

MAX_COLUMN_CHARTS = 40


def _column_chart(info: Mapping[str, Any]) -> Figure | None:
    """Rows per value or bin (bars) and the positive rate in each (line, right axis)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    rates = info.get("target_rate") or []
    if rates:
        groups = [r["group"] for r in rates]
        fig.add_bar(x=groups, y=[r["rows"] for r in rates], name="rows")
        fig.add_scatter(x=groups, y=[r["rate"] for r in rates], mode="lines+markers",
                        name="positive rate", secondary_y=True)  # fmt: skip
    elif "histogram" in info:
        edges = info["histogram"]["edges"]
        centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        fig.add_bar(x=centres, y=info["histogram"]["counts"], name="rows")
    elif "top" in info:
        fig.add_bar(x=list(info["top"]), y=list(info["top"].values()), name="rows")
    else:
        return None
    fig.update_layout(title=f"{info['column']} ({info['kind']})", **_LAYOUT)
    fig.update_yaxes(title_text="rows", secondary_y=False)
    if rates:
        fig.update_yaxes(title_text="positive rate", secondary_y=True)
    return fig


def _correlation_chart(correlations: Mapping[str, Any]) -> Figure | None:
    import plotly.graph_objects as go

    names = correlations.get("columns") or []
    if len(names) < 2:
        return None
    fig = go.Figure(go.Heatmap(z=correlations["matrix"], x=names, y=names, zmin=-1, zmax=1,
                               colorscale="RdBu"))  # fmt: skip
    fig.update_layout(title="Correlations between numeric columns (Pearson)", **_LAYOUT)
    return fig


def write_profile_report(path: str | Path, profile: Mapping[str, Any], *, title: str) -> Path:
    """Write the profile page and return its path."""
    charts: dict[str, Figure] = {}
    correlation = _correlation_chart(profile["correlations"])
    if correlation is not None:
        charts["correlations"] = correlation
    for info in profile["columns"][:MAX_COLUMN_CHARTS]:
        chart = _column_chart(info)
        if chart is not None:
            charts[f"column-{info['column']}"] = chart
    keys = ("column", "kind", "missing_rate", "distinct", "min", "max", "mean", "auc", "flags")
    rows = [{key: info.get(key) for key in keys} for info in profile["columns"]]
    summary = {"rows": profile["rows"], "columns": len(profile["columns"]),
               "target": profile["target"] or "-",
               "positive rate": profile["positive_rate"]}  # fmt: skip
    suspects = [{"column": s["column"], "why": ", ".join(s["flags"])} for s in profile["suspects"]]
    tables = [
        {"title": "Columns", "rows": rows,
         "note": "auc: how well the column alone separates the classes (0.5 = not at all)."},
        {"title": "Suspect columns", "rows": suspects or [{"column": "-", "why": "none found"}],
         "note": "Ids and leaks make a model look better in training than in production."},
    ]  # fmt: skip
    return write_page(path, title=title, summary=summary, tables=tables, charts=charts)

"""A run's training telemetry for the dashboard: the same charts the report draws.

Networks store their curve after epochs while the run goes on, so the training page
polls this while the run's status is ``running`` and stops once it ends.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlprod.evaluation import telemetry_charts
from mlprod.registry import get_run, read_curves
from mlprod.store import Store


def chart_id(key: str) -> str:
    """A DOM id for a chart key such as ``mlp training``."""
    return "chart-" + re.sub(r"[^A-Za-z0-9_-]", "-", key)


def training_detail(store: Store, run_id: str) -> dict[str, Any]:
    """Status, one summary per network candidate, and its charts (plain plotly JSON)."""
    run = get_run(store, run_id)
    networks: list[dict[str, Any]] = []
    charts: dict[str, Any] = {}
    for curve in read_curves(store, run.id):
        if not curve.telemetry:
            continue
        epochs = curve.telemetry.get("epochs", [])
        last = epochs[-1] if epochs else {}
        networks.append(
            {
                "candidate": curve.candidate,
                "epochs": len(epochs),
                "best_epoch": curve.telemetry.get("best_epoch"),
                "device": curve.telemetry.get("device"),
                "val_loss": last.get("val_loss"),
                "charts": [],
            }
        )
        figures = telemetry_charts(curve.candidate, curve.model_dump())
        for key, figure in figures.items():
            networks[-1]["charts"].append(chart_id(key))
            charts[chart_id(key)] = json.loads(figure.to_json())
    return {
        "run": {"id": run.id, "model": run.model, "status": run.status, "version": run.version},
        "networks": networks,
        "charts": charts,
    }

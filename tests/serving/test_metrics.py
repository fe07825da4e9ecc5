"""/metrics in Prometheus format: per model and version, errors by code, pool gauges."""

from __future__ import annotations

import re

import httpx
import pandas as pd

from mlprod.features import json_safe
from support import Project, Server


def _value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = (
        rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$"
        if labels
        else rf"^{re.escape(name)} (\S+)$"
    )
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{name}{{{wanted}}} not in /metrics"
    return float(found.group(1))


def test_metrics_count_records_errors_and_latency(server: Server, trained_project: Project) -> None:
    before = httpx.get(server.url + "/metrics").text
    base = (
        _value(before, "mlprod_predictions_total", model="churn", version="1")
        if "mlprod_predictions_total{" in before
        else 0.0
    )
    rows = pd.read_csv(trained_project.root / "customers.csv").drop(columns=["churned"]).head(7)
    records = [{k: json_safe(v) for k, v in r.items()} for r in rows.to_dict("records")]
    assert (
        httpx.post(server.url + "/v1/models/churn/predict", json={"records": records}).status_code
        == 200
    )
    assert (
        httpx.post(server.url + "/v1/models/churn/predict", json={"records": [{}]}).status_code
        == 422
    )
    text = httpx.get(server.url + "/metrics").text
    assert _value(text, "mlprod_predictions_total", model="churn", version="1") == base + 7
    assert _value(text, "mlprod_request_errors_total", model="churn", code="invalid_input") >= 1
    assert _value(text, "mlprod_request_seconds_count", model="churn", version="1") >= 1
    assert _value(text, "mlprod_pool_models_served") == 1
    assert _value(text, "mlprod_pool_ready") == 1

"""The REST contract against a real `mlprod serve` process on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.features import json_safe
from support import Project, Server


def _records(project: Project, n: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(project.root / "customers.csv").drop(columns=["churned"]).head(n)
    return [{k: json_safe(v) for k, v in row.items()} for row in frame.to_dict("records")]


def test_health_models_and_readiness(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == {"churn": 1}
    models = httpx.get(server.url + "/v1/models").json()["models"]
    assert [(m["name"], m["version"], m["alias"]) for m in models] == [("churn", 1, "production")]
    assert {"name": "plan", "kind": "categorical"} in models[0]["fields"]


def test_predict_answers_ids_versions_scores_and_labels(
    server: Server, trained_project: Project
) -> None:
    records = _records(trained_project, 25)
    answer = httpx.post(server.url + "/v1/models/churn/predict", json={"records": records}).json()
    assert answer["model"] == "churn"
    predictions = answer["predictions"]
    assert len(predictions) == 25 and len({p["id"] for p in predictions}) == 25
    assert {p["version"] for p in predictions} == {1}
    model = mlprod.load("churn@production", store=trained_project.store)
    expected = model.score(pd.DataFrame(records))
    np.testing.assert_allclose([p["score"] for p in predictions], expected, rtol=0, atol=1e-12)
    assert [p["label"] for p in predictions] == [bool(s >= model.threshold) for s in expected]


def test_pinned_version_and_unknown_model(server: Server, trained_project: Project) -> None:
    body = {"records": _records(trained_project, 1)}
    pinned = httpx.post(server.url + "/v1/models/churn/versions/1/predict", json=body)
    assert pinned.status_code == 200 and pinned.json()["predictions"][0]["version"] == 1
    missing = httpx.post(server.url + "/v1/models/nope/predict", json=body)
    assert missing.status_code == 404 and "churn" in missing.json()["error"]["message"]
    no_version = httpx.post(server.url + "/v1/models/churn/versions/99/predict", json=body)
    assert no_version.status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"tenure_months": "twelve"}, "tenure_months", "a number"),
        ({"monthly_charges": [1, 2]}, "monthly_charges", "a number"),
        ({"signup_date": "yesterday-ish"}, "signup_date", "date-time"),
        ({"has_partner": "maybe"}, "has_partner", "a boolean"),
        ({"plan": {"name": "basic"}}, "plan", "string"),
        ({"tenure_months": "NaN"}, "tenure_months", "a number, not a string"),
    ],
)
def test_bad_values_are_422s_naming_the_field(
    server: Server, trained_project: Project, change: dict[str, Any], field: str, expected: str
) -> None:
    record = {**_records(trained_project, 1)[0], **change}
    response = httpx.post(server.url + "/v1/models/churn/predict", json={"records": [record]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["fields"][0]["field"] == field and expected in error["fields"][0]["expected"]
    assert field in error["message"]


def test_missing_field_is_a_422_but_extra_fields_nulls_and_unseen_categories_score(
    server: Server, trained_project: Project
) -> None:
    record = _records(trained_project, 1)[0]
    without = {k: v for k, v in record.items() if k != "plan"}
    response = httpx.post(server.url + "/v1/models/churn/predict", json={"records": [without]})
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["field"] == "plan"
    odd = {**record, "plan": "platinum-plus", "tenure_months": None, "unexpected": 1, "region": 7}
    response = httpx.post(server.url + "/v1/models/churn/predict", json={"records": [odd]})
    assert response.status_code == 200
    assert 0.0 <= response.json()["predictions"][0]["score"] <= 1.0


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"records": []}', b'{"records": {"a": 1}}', b"[1, 2]", b'{"records": [1]}'],
)
def test_malformed_bodies_are_clear_errors_without_internals(server: Server, body: bytes) -> None:
    response = httpx.post(
        server.url + "/v1/models/churn/predict",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "fields"}
    assert "Traceback" not in response.text and "/site-packages/" not in response.text


def test_openapi_shows_each_models_fields_with_types(server: Server) -> None:
    document = httpx.get(server.url + "/openapi.json").json()
    assert "/v1/models/churn/predict" in document["paths"]
    record = document["components"]["schemas"]["ChurnRecord"]
    assert record["properties"]["tenure_months"]["type"] == ["number", "null"]
    assert record["properties"]["plan"]["type"] == ["string", "null"]
    assert record["properties"]["has_partner"]["type"] == ["boolean", "null"]
    assert record["properties"]["signup_date"]["format"] == "date-time"
    assert "plan" in record["required"]


def test_server_with_no_production_model_is_not_ready(tmp_path: Any) -> None:
    empty = Project(tmp_path)
    server = Server(empty)
    try:
        server.wait_ready()
        assert httpx.get(server.url + "/readyz").status_code == 503
    finally:
        server.stop()


def test_a_pinned_version_still_loading_answers_503_and_loads_on(trained_project: Project) -> None:
    """A version asked for by number loads on first use; when the load outlasts the request's
    budget the client hears "loading, retry" (503, Retry-After), not a timeout, and the load
    carries on so that a retry is answered."""
    import time

    budget = "0.15"  # the request waits 50 ms of it: no load (verify, warm up, check) fits
    server = Server(trained_project, "--alias", "staging", env={"MLPROD_REQUEST_TIMEOUT": budget})
    try:
        server.wait_ready()
        url = server.url + "/v1/models/churn/versions/1/predict"
        body = {"records": _records(trained_project, 3)}
        first = httpx.post(url, json=body, timeout=30)
        assert first.status_code == 503, first.text
        assert first.headers["retry-after"] == "1"
        assert first.json()["error"]["code"] == "loading"
        assert "churn@1" in first.json()["error"]["message"]
        deadline = time.monotonic() + 120
        answer = first
        while answer.status_code in (503, 504):  # 504: a busy machine outran 150 ms anyway
            assert time.monotonic() < deadline, "the pinned version never loaded"
            time.sleep(0.2)
            answer = httpx.post(url, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        model = mlprod.load("churn@1", store=trained_project.store)
        expected = model.score(pd.DataFrame(body["records"]))
        scores = [p["score"] for p in answer.json()["predictions"]]
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
        unknown = httpx.post(server.url + "/v1/models/churn/versions/99/predict", json=body)
        assert unknown.status_code == 404, unknown.text  # never "loading": it does not exist
    finally:
        server.stop()

"""A real server holds every request to the interface, value by value, and logs no extras."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlprod.pipelines import promote, train
from mlprod.predlog import read_predictions
from mlprod.store import Store
from support import SMALL_SPEC, Project, Server, records_from, run_cli, write_project

INTERFACE = """\
interface:
  extra: {extra}
  request:
    customer_id: {{type: string, max_length: 16}}
    tenure_months: {{type: integer, minimum: 0, maximum: 600}}
    monthly_charges: {{type: number, minimum: 0, nullable: false}}
    total_charges: number
    support_calls: {{type: integer, minimum: 0}}
    last_login_days: {{type: number, minimum: 0}}
    plan: {{type: string, values: [basic, family, premium, standard]}}
    region: {{type: string, max_length: 12, nullable: false}}
    payment_method: {{type: string, required: false}}
    has_partner: boolean
    paperless_billing: boolean
    signup_date: datetime
  response:
    label: {{values: [false, true]}}
"""
MEGABYTE = "x" * 1_000_000


def contract_project(root: Path, extra: str, store: str | None = None) -> Project:
    """churn with an interface (`extra` policy), trained and promoted."""
    project = write_project(root, rows=1500, spec=SMALL_SPEC + INTERFACE.format(extra=extra),
                            store=store)  # fmt: skip
    settings = project.settings()
    version = train(project.spec, settings=settings).version
    promote("churn", version, "production", settings=settings, actor="test")
    return project


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Server]]:
    """A served version whose interface refuses extra fields."""
    project = contract_project(tmp_path_factory.mktemp("strict"), "reject")
    server = Server(project)
    try:
        server.wait_ready(timeout=300)
        yield project, server
    finally:
        server.stop()


def _post(server: Server, records: list[dict[str, Any]]) -> httpx.Response:
    url = server.url + "/v1/models/churn/predict"
    return httpx.post(url, json={"records": records}, timeout=30)


def _one_problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    (problem,) = error["fields"]
    assert problem["field"] in error["message"] and problem["got"] in error["message"]
    return dict(problem)


GUESSED = [  # accepted silently before: each was turned into a number or a date-time
    ("tenure_months", "1.5", "a number, not a string"),
    ("signup_date", "now", "an ISO 8601 date-time"),
    ("monthly_charges", "", "a number, not a string"),
    ("signup_date", "", "an ISO 8601 date-time"),  # was read as a missing date
]


@pytest.mark.parametrize(("field", "value", "expected"), GUESSED)
def test_values_are_never_guessed_at_without_an_interface(
    server: Server, trained_project: Project, field: str, value: str, expected: str
) -> None:
    record = {**records_from(trained_project, 1)[0], field: value}
    problem = _one_problem(_post(server, [record]))
    assert problem == {"record": 0, "field": field, "expected": problem["expected"],
                       "got": repr(value)}  # fmt: skip
    assert expected in problem["expected"]


@pytest.mark.parametrize(("field", "value", "expected"), GUESSED)
def test_values_are_never_guessed_at_under_an_interface(
    strict: tuple[Project, Server], field: str, value: str, expected: str
) -> None:
    project, server = strict
    record = {**records_from(project, 1)[0], field: value}
    problem = _one_problem(_post(server, [record]))
    assert problem["field"] == field and expected in problem["expected"]
    assert problem["got"] == repr(value)


BOUNDS = [
    ({"tenure_months": -1}, "a number >= 0"),
    ({"tenure_months": 601}, "a number <= 600"),
    ({"tenure_months": 1.5}, "an integer"),
    ({"plan": "gold"}, "one of ['basic', 'family', 'premium', 'standard']"),
    ({"plan": 5}, "a string (got int)"),
    ({"region": None}, "null is not allowed"),
    ({"region": "r" * 13}, "a string of at most 12 characters (got 13)"),
    ({"customer_id": "C" * 17}, "a string of at most 16 characters"),
    ({"monthly_charges": None}, "null is not allowed"),
]


@pytest.mark.parametrize(("change", "expected"), BOUNDS)
def test_the_interfaces_bounds_are_422s_naming_field_expected_and_got(
    strict: tuple[Project, Server], change: dict[str, Any], expected: str
) -> None:
    project, server = strict
    records = records_from(project, 3)
    records[2] = {**records[2], **change}
    problem = _one_problem(_post(server, records))
    (field,) = change
    assert problem["record"] == 2 and problem["field"] == field
    assert expected in problem["expected"] and problem["got"] == repr(change[field])


def test_the_fast_path_serves_the_interface_and_refuses_what_the_reference_refuses(
    strict: tuple[Project, Server],
) -> None:
    import mlprod
    from mlprod.errors import SchemaError
    from mlprod.serving import LoadedVersion, records_to_frame

    project, server = strict
    (model,) = httpx.get(server.url + "/v1/models").json()["models"]
    assert model["routes"][0]["serving_path"] == "fast"
    loaded = LoadedVersion.prepare(mlprod.load("churn@production", store=project.store))
    assert loaded.fast is not None and loaded.fast.verified.startswith("matches")
    records = records_from(project, 20)
    expected = loaded.model.score(records_to_frame(records, loaded.contract, max_records=20))
    assert loaded.fast.score_records(records).tolist() == pytest.approx(expected.tolist(), abs=1e-9)
    for change, _ in [*BOUNDS, ({"notes": "x"}, "")]:
        bad = [*records[:2], {**records[2], **change}]
        with pytest.raises(SchemaError) as fast:
            loaded.fast.score_records(bad)
        with pytest.raises(SchemaError) as reference:
            records_to_frame(bad, loaded.contract, max_records=10)
        assert fast.value.fields == reference.value.fields and len(fast.value.fields) == 1


def test_records_within_the_interface_score_and_optional_fields_may_be_left_out(
    strict: tuple[Project, Server],
) -> None:
    project, server = strict
    records = records_from(project, 50)
    answer = _post(server, records)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 50
    without = [{k: v for k, v in r.items() if k != "payment_method"} for r in records[:5]]
    nulls = [{**r, "payment_method": None} for r in records[:5]]
    left_out = _post(server, without).json()["predictions"]
    assert [p["score"] for p in left_out] == [
        p["score"] for p in _post(server, nulls).json()["predictions"]
    ]  # a field left out scores as a null: missing
    assert {p["label"] for p in answer.json()["predictions"]} <= {False, True}
    no_plan = {k: v for k, v in records[0].items() if k != "plan"}  # plan is required
    problem = _one_problem(_post(server, [no_plan]))
    assert problem == {"record": 0, "field": "plan", "got": "no such field",
                       "expected": "this field (use null if unknown)"}  # fmt: skip


def _logged_records(url: str, ids: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """The logged input of each prediction id, once the flusher has stored them all."""
    deadline = time.monotonic() + timeout
    while True:
        with Store.open(url) as store:
            frame = read_predictions(store, "churn")
        found = {i: r for i, r in zip(frame["id"], frame["record"], strict=True) if i in ids}
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_reject_refuses_an_extra_field_and_logs_nothing_of_it(
    strict: tuple[Project, Server],
) -> None:
    project, server = strict
    url = project.settings().store_url()
    records = records_from(project, 2)

    def logged_after(record: dict[str, Any]) -> int:
        """Rows in the log once an accepted request (sent now) is stored."""
        accepted = _post(server, [record]).json()["predictions"][0]["id"]
        assert list(_logged_records(url, [accepted])) == [accepted]
        with Store.open(url) as store:
            return len(read_predictions(store, "churn"))

    before = logged_after(records[0])
    records[1] = {**records[1], "notes": MEGABYTE}
    response = _post(server, records)
    problem = _one_problem(response)
    assert problem["record"] == 1 and problem["field"] == "notes"
    assert "refuses fields it does not name" in problem["expected"]
    assert len(problem["got"]) <= 80 and len(response.content) < 2000
    assert logged_after(records[0]) == before + 1  # the refused request left no row
    with Store.open(url) as store:
        assert not any("notes" in record for record in read_predictions(store, "churn")["record"])


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_ignore_drops_extra_fields_before_the_log_on_every_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    project = contract_project(tmp_path / "ignore", "ignore", store)
    server = Server(project)
    try:
        server.wait_ready(timeout=300)
        records = records_from(project, 3)
        records[0] = {**records[0], "notes": MEGABYTE, "debug": {"nested": [1, 2]}}
        answer = _post(server, records)
        assert answer.status_code == 200, answer.text
        ids = [p["id"] for p in answer.json()["predictions"]]
        logged = _logged_records(project.settings().store_url(), ids)
    finally:
        server.stop()
    assert sorted(logged) == sorted(ids)
    first = logged[ids[0]]
    assert "notes" not in first and "debug" not in first
    assert first["customer_id"] == records[0]["customer_id"]  # the contract's fields stay
    assert first["event_time"] == records[0]["event_time"]  # and the time column
    assert first["plan"] == records[0]["plan"]
    assert len(json.dumps(first)) < 2000


def test_without_an_interface_extra_fields_score_but_never_reach_the_log(
    server: Server, trained_project: Project
) -> None:
    record = {**records_from(trained_project, 1)[0], "notes": MEGABYTE}
    answer = _post(server, [record])
    assert answer.status_code == 200
    (prediction,) = answer.json()["predictions"]
    logged = _logged_records(trained_project.settings().store_url(), [prediction["id"]])
    assert "notes" not in logged[prediction["id"]]
    assert logged[prediction["id"]]["tenure_months"] == record["tenure_months"]


def test_the_served_document_is_the_one_printed_from_the_spec(
    strict: tuple[Project, Server],
) -> None:
    from fastapi.openapi.models import OpenAPI

    project, server = strict
    printed = json.loads(run_cli(project, "interface", "--json").stdout)
    served = httpx.get(server.url + "/openapi.json").json()
    OpenAPI.model_validate(printed)
    OpenAPI.model_validate(served)
    for name in ("ChurnRecord", "ChurnPrediction"):
        assert served["components"]["schemas"][name] == printed["components"]["schemas"][name]
    path = "/v1/models/churn/predict"
    assert served["paths"][path] == printed["paths"][path]
    record = printed["components"]["schemas"]["ChurnRecord"]
    assert record["additionalProperties"] is False
    assert record["properties"]["tenure_months"] == {
        "type": ["integer", "null"], "minimum": 0, "maximum": 600,
    }  # fmt: skip
    assert "payment_method" not in record["required"] and "plan" in record["required"]

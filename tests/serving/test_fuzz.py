"""A property-based fuzz of every endpoint in the OpenAPI document: no answer is a 5xx.

Schemathesis reads the document a real server (uvicorn on 127.0.0.1) publishes and
generates requests that fit it and requests that do not; routes that read their body
themselves also get arbitrary JSON. The budget is fixed and the seed derived from the
test (`derandomize`), so a run is repeatable and takes seconds. An admin token goes with
every request, so the checks behind authentication are reached too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from mlprod.serving import create_app, create_token
from mlprod.settings import Settings
from mlprod.store import Store
from support import Project, free_port

POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
EXAMPLES = 25  # per operation and mode: the budget
BUDGET = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its case as is
    suppress_health_check=list(HealthCheck),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
RECORDS = st.fixed_dictionaries({"records": st.lists(st.dictionaries(
    st.sampled_from(["tenure_months", "plan", "signup_date", "has_partner", "x"]), JSON,
), max_size=3)})  # fmt: skip


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 in a thread, its lifespan run (models load first)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _fuzz(url: str, secret: str) -> dict[str, int]:
    """Every operation, positive and negative cases, plus raw JSON bodies; counts by status."""
    headers = {"Authorization": f"Bearer {secret}"}
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    seen: dict[str, int] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            _run(operation.as_strategy(generation_mode=POSITIVE), url, headers, seen)
            with suppress(Unsatisfiable):  # an operation with nothing to make invalid
                _run(operation.as_strategy(generation_mode=NEGATIVE), url, headers, seen)
            if operation.method.upper() == "POST":
                _run_bodies(operation.as_strategy(), client, seen)
    return seen


def _check(label: str, status: int, body: str, seen: dict[str, int]) -> None:
    seen[str(status)] = seen.get(str(status), 0) + 1
    not_ready = label == "GET /readyz" and status == 503  # a store with no model yet
    assert status < 500 or not_ready, f"{label} answered {status}: {body[:500]}"


def _run(strategy: Any, url: str, headers: dict[str, str], seen: dict[str, int]) -> None:
    @BUDGET
    @given(case=strategy)
    def check(case: Any) -> None:
        answer = case.call(base_url=url, headers=headers, timeout=30)
        _check(f"{case.method} {case.formatted_path}", answer.status_code, answer.text, seen)

    check()


def _run_bodies(strategy: Any, client: httpx.Client, seen: dict[str, int]) -> None:
    @BUDGET
    @given(case=strategy, body=JSON | RECORDS)
    def check(case: Any, body: Any) -> None:
        answer = client.post(case.formatted_path, content=json.dumps(body))  # NaN, 2**70 too
        _check(f"POST {case.formatted_path} {body!r}", answer.status_code, answer.text, seen)

    check()


def _admin(store_url: str) -> str:
    with Store.open(store_url) as store:
        return create_token(store, "fuzz", ["admin"], actor="test")[1]


@pytest.mark.slow
def test_fuzz_every_endpoint_with_a_served_model(trained_project: Project, tmp_path: Path) -> None:
    project_settings = trained_project.settings()
    settings_ = project_settings.model_copy(update={"spool": str(tmp_path / "spool")})
    secret = _admin(settings_.store_url())
    with serve_in_thread(create_app(settings_)) as url:
        document = httpx.get(url + "/openapi.json").json()
        assert "/v1/models/churn/predict" in document["paths"]  # the model's own path too
        seen = _fuzz(url, secret)
    assert seen.get("200", 0) > 50 and seen.get("422", 0) > 50  # both kinds were reached


@pytest.mark.postgres
def test_fuzz_every_endpoint_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    folders = {key: str(tmp_path / key) for key in ("artifacts", "spool", "compiled")}
    settings_ = Settings(store=postgres_url, **folders)
    secret = _admin(postgres_url)
    with serve_in_thread(create_app(settings_)) as url:
        seen = _fuzz(url, secret)
    assert seen.get("404", 0) > 20 and seen.get("200", 0) > 20

"""Hostile clients: numbers past the column, random model names, foreign Host headers,
open routes on a public bind, and a crash repeated until the log would fill the disk.

Servers are real: `mlprod serve` processes, or uvicorn on 127.0.0.1 in a thread when the
test needs the app in hand (an extra route, a store of its own).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from mlprod.errors import NotFoundError
from mlprod.registry import get_version
from mlprod.serving import create_app
from mlprod.serving._crashes import ThrottledLog
from mlprod.serving._hosts import host_allowed, host_name
from mlprod.settings import Settings, is_loopback
from mlprod.store import Store
from mlprod.store import schema as t
from support import Project, Server, free_port

BEYOND_INT64 = "9223372036854775808"
FOREIGN = {"Host": "rebound.attacker.example"}


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 in a thread, its lifespan run (models load first)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # loading models on a busy machine takes a while
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _settings(store_url: str, tmp: Any, **extra: Any) -> Settings:
    return Settings(store=store_url, artifacts=str(tmp / "artifacts"), spool=str(tmp / "spool"),
                    compiled=str(tmp / "compiled"), **extra)  # fmt: skip


def _error_rows(store_url: str) -> list[tuple[str, str]]:
    with Store.open(store_url) as store:
        query = sa.select(t.request_errors.c.model, t.request_errors.c.code)
        return [(row.model, row.code) for row in store.read(lambda c: c.execute(query).all())]


# --- numbers past the column


def test_a_version_past_the_column_names_no_version(store: Store) -> None:
    for number in (2**31, 2**63, 2**64 + 1, 0, -1):
        with pytest.raises(NotFoundError, match=r"no model 'churn'|no version"):
            get_version(store, "churn", number)


def test_pinned_version_past_int64_is_a_404_on_both_stores(store_url: str, tmp_path: Any) -> None:
    app = create_app(_settings(store_url, tmp_path))
    with serve_in_thread(app) as url:
        for version in (BEYOND_INT64, str(2**31), "99999999999999999999999999"):
            answer = httpx.post(f"{url}/v1/models/churn/versions/{version}/predict", json={})
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"]["code"] == "not_found"
        ready = httpx.get(url + "/readyz").json()
        assert ready["failed"] == {}  # a version that does not exist is no failed load
    assert _error_rows(store_url) == []  # and the refusals left no rows behind


def test_pinned_version_past_int64_of_a_served_model(server: Server) -> None:
    answer = httpx.post(f"{server.url}/v1/models/churn/versions/{BEYOND_INT64}/predict", json={})
    assert answer.status_code == 404
    assert "churn has no version 9223372036854775808 (versions: 1)" in answer.text


# --- random model names


def _series(metrics: str, name: str) -> list[str]:
    return [line for line in metrics.splitlines() if line.startswith(name + "{")]


def test_unknown_model_names_leave_one_counter_on_both_stores(
    store_url: str, tmp_path: Any
) -> None:
    app = create_app(_settings(store_url, tmp_path, monitor_flush=0.2))
    names = [f"m{uuid.uuid4().hex[:12]}" for _ in range(150)]
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        before = len(client.get("/metrics").text)
        for i, name in enumerate(names):
            path = (
                f"/v1/models/{name}/predict" if i % 2 else f"/v1/models/{name}/versions/1/predict"
            )
            assert client.post(path, json={"records": []}).status_code == 404
        time.sleep(1.0)  # several live-statistics flushes
        metrics = client.get("/metrics").text
        ready = client.get("/readyz").json()
    errors = _series(metrics, "mlprod_request_errors_total")
    assert errors == ['mlprod_request_errors_total{code="not_found",model="(unknown)"} 150.0']
    assert not any(name in metrics for name in names)
    assert len(metrics) - before < 500  # one series, not 150
    assert ready["failed"] == {} and ready["missing"] == []
    assert _error_rows(store_url) == []


def test_a_served_models_errors_keep_their_label_and_rows(
    server: Server, trained_project: Project
) -> None:
    """The sibling: errors of a model the server knows are still counted by name."""
    bad = {"records": [{"tenure_months": "many"}]}
    assert httpx.post(server.url + "/v1/models/churn/predict", json=bad).status_code == 422
    stray = f"m{uuid.uuid4().hex[:12]}"
    assert httpx.post(f"{server.url}/v1/models/{stray}/predict", json=bad).status_code == 404
    metrics = httpx.get(server.url + "/metrics").text
    assert 'mlprod_request_errors_total{code="invalid_input",model="churn"}' in metrics
    assert stray not in metrics
    url = trained_project.settings().store_url()
    deadline = time.monotonic() + 30
    while ("churn", "invalid_input") not in _error_rows(url):
        assert time.monotonic() < deadline, "the live-error row never arrived"
        time.sleep(0.2)
    assert not any(model == stray for model, _ in _error_rows(url))


# --- the Host header


@pytest.mark.parametrize(
    ("value", "name"),
    [("localhost:8000", "localhost"), ("[::1]:8000", "::1"), ("::1", "::1"),
     ("API.Example.com", "api.example.com"), ("", "")],
)  # fmt: skip
def test_host_name_drops_the_port_and_case(value: str, name: str) -> None:
    assert host_name(value) == name


def test_allowed_hosts_default_to_the_bind_address_and_localhost() -> None:
    assert Settings(host="10.0.0.7").host_names() == {"10.0.0.7", "localhost", "127.0.0.1", "::1"}
    assert Settings(allowed_hosts="api.example.com, *.corp.example").host_names() == {
        "api.example.com",
        "*.corp.example",
    }
    assert Settings(allowed_hosts="*").host_names() is None
    allowed = {"*.corp.example", "api.example.com"}
    assert host_allowed("ml.corp.example", allowed) and host_allowed("api.example.com", allowed)
    assert not host_allowed("corp.example.attacker.net", allowed)
    assert not host_allowed("evilcorp.example", allowed)


def test_a_foreign_host_gets_400_but_known_names_and_probes_answer(server: Server) -> None:
    port = server.port
    for path in ("/v1/models", "/metrics", "/openapi.json", "/docs"):
        refused = httpx.get(server.url + path, headers=FOREIGN)
        assert refused.status_code == 400, path
        message = refused.json()["error"]["message"]
        assert "rebound.attacker.example" in message and "MLPROD_ALLOWED_HOSTS" in message
    predict = httpx.post(server.url + "/v1/models/churn/predict", json={}, headers=FOREIGN)
    assert predict.status_code == 400 and predict.json()["error"]["code"] == "bad_host"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
        assert httpx.get(server.url + "/v1/models", headers={"Host": host}).status_code == 200
    for probe in ("/healthz", "/readyz"):  # orchestrators call them by the pod's address
        assert httpx.get(server.url + probe, headers=FOREIGN).status_code == 200


def test_allowed_hosts_setting_and_dashboard_page_headers(trained_project: Project) -> None:
    env = {"MLPROD_ALLOWED_HOSTS": "api.example.com,*.corp.example"}
    running = Server(trained_project, "--ui", env=env)
    try:
        running.wait_ready()
        ok = {"Host": "ml.corp.example"}
        assert httpx.get(running.url + "/v1/models", headers=ok).status_code == 200
        named = {"Host": "api.example.com:443"}
        assert httpx.get(running.url + "/v1/models", headers=named).status_code == 200
        assert httpx.get(running.url + "/v1/models").status_code == 400  # 127.0.0.1 not listed
        page = httpx.get(running.url + "/ui/", headers=ok)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert page.headers["x-frame-options"] == "SAMEORIGIN"
        assert page.headers["content-security-policy"] == "frame-ancestors 'self'"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert httpx.get(running.url + "/ui/", headers=FOREIGN).status_code == 400
        api = httpx.get(running.url + "/v1/models", headers=ok)
        assert "x-frame-options" not in api.headers  # the scoring path stays as it was
    finally:
        running.stop()


def test_the_dashboard_alone_checks_the_host_and_throttles_crashes(
    trained_project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    from mlprod.dashboard import create_dashboard

    settings = trained_project.settings().model_copy(update={"monitor": False})
    app = create_dashboard(settings)

    def broken() -> None:
        raise RuntimeError("broken page")

    app.add_api_route("/ui/broken", broken)
    caplog.set_level(logging.ERROR)
    with serve_in_thread(app) as url:
        page = httpx.get(url + "/ui/")
        assert page.status_code == 200 and page.headers["x-frame-options"] == "SAMEORIGIN"
        assert page.headers["content-security-policy"] == "frame-ancestors 'self'"
        assert httpx.get(url + "/ui/", headers=FOREIGN).status_code == 400
        assert httpx.get(url + "/healthz", headers=FOREIGN).status_code == 200
        crashed = [httpx.get(url + "/ui/broken") for _ in range(10)]
    assert {c.status_code for c in crashed} == {500}
    assert "broken page" not in crashed[0].text
    assert len([r for r in caplog.records if r.exc_info is not None]) == 1


# --- open routes only on loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
     ("[::1]", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
     ("ml.internal", False)],
)  # fmt: skip
def test_routes_are_open_by_default_only_on_a_loopback_bind(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    settings = Settings(host=host)
    assert settings.opens("predict") is loopback and settings.opens("outcomes") is loopback
    opened = Settings(host=host, predict_open=True)
    assert opened.opens("predict") and opened.opens("outcomes") is loopback
    assert Settings(host=host, outcomes_open=True).opens("outcomes")
    closed = Settings(host=host, predict_open=False)  # closing predictions closes outcomes too
    assert not closed.opens("predict") and not closed.opens("outcomes")


def test_a_public_bind_needs_tokens_unless_opened(trained_project: Project) -> None:
    body = {"records": []}
    outcomes = {"outcomes": [{"prediction_id": "x", "label": True}]}
    running = Server(trained_project, "--host", "0.0.0.0")
    try:
        running.wait_ready()
        predict = httpx.post(running.url + "/v1/models/churn/predict", json=body)
        assert predict.status_code == 401 and "--scope predict" in predict.text
        posted = httpx.post(running.url + "/v1/outcomes", json=outcomes)
        assert posted.status_code == 401 and "--scope outcomes" in posted.text
        assert httpx.get(running.url + "/healthz").status_code == 200
    finally:
        running.stop()
    assert "predict and outcomes need a token on 0.0.0.0" in running.output()


def test_a_public_bind_opened_explicitly(trained_project: Project, tmp_path: Any) -> None:
    project = trained_project
    settings = project.settings().model_copy(
        update={"host": "0.0.0.0", "predict_open": True, "spool": str(tmp_path / "spool")}
    )
    with serve_in_thread(create_app(settings)) as url:
        answer = httpx.post(url + "/v1/models/churn/predict", json={"records": []})
        assert answer.status_code != 401  # opened on purpose
        outcomes = {"outcomes": [{"prediction_id": "x", "label": True}]}
        assert httpx.post(url + "/v1/outcomes", json=outcomes).status_code == 401  # not opened


# --- a crash, repeated


def test_a_repeated_crash_logs_one_traceback_per_kind(
    sqlite_store: Store, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(_settings(sqlite_store.url, tmp_path, monitor=False), store=sqlite_store)

    def broken(item: str) -> dict[str, str]:
        raise RuntimeError(f"broken for {item}")

    def other() -> dict[str, str]:
        raise KeyError("other")

    def midway() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            yield b"[1,"
            raise ValueError("midway")

        return StreamingResponse(chunks(), media_type="application/json")

    app.add_api_route("/v1/broken/{item}", broken)
    app.add_api_route("/v1/other", other)
    app.add_api_route("/v1/midway", midway)
    caplog.set_level(logging.ERROR)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        answers = [client.get(f"/v1/broken/{i}") for i in range(40)]
        answers.append(client.get("/v1/other"))
        with pytest.raises(httpx.RemoteProtocolError):  # the answer had begun: cut short
            client.get("/v1/midway")
        metrics = client.get("/metrics").text
    assert {a.status_code for a in answers} == {500}
    assert {a.json()["error"]["code"] for a in answers} == {"internal"}
    assert all("broken for" not in a.text for a in answers)  # internals stay in the log
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    kinds = [r.exc_info[0] for r in tracebacks if r.exc_info]
    assert kinds == [RuntimeError, KeyError, ValueError]
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]
    assert 'mlprod_request_errors_total{code="internal",model="-"} 42.0' in metrics


def test_throttled_log_says_how_many_were_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttled = ThrottledLog(10.0, clock=lambda: now[0])
    caplog.set_level(logging.ERROR)
    error = ValueError("x")
    assert throttled.error("GET /a ValueError", "GET /a/1 crashed", exc_info=error)
    for i in range(25):
        now[0] += 0.1
        assert not throttled.error("GET /a ValueError", f"GET /a/{i} crashed", exc_info=error)
    assert throttled.error("GET /b ValueError", "GET /b crashed")  # another kind: its own line
    now[0] += 10.0
    assert throttled.error("GET /a ValueError", "GET /a/9 crashed", exc_info=error)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "GET /a/1 crashed",
        "GET /b crashed",
        "GET /a/9 crashed (25 more like it since the last line)",
    ]

"""The open predict route answered beside FastAPI's router: the same answers, errors, crashes.

`DirectPredict` answers ``POST /v1/models/{name}/predict`` itself while predictions need
no token; the route answered by FastAPI (tokens required) is the reference it must match.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from mlprod.errors import MlprodError, NotFoundError
from mlprod.features import json_safe
from mlprod.serving import create_token
from mlprod.serving._auth import Authenticator
from mlprod.serving._crashes import CrashLog, ThrottledLog
from mlprod.serving._direct import DirectPredict
from mlprod.settings import Settings
from mlprod.store import Store
from support import Project, Server

PREDICT = "/v1/models/churn/predict"


def _records(project: Project, count: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(project.root / "customers.csv").drop(columns=["churned"]).head(count)
    return [{k: json_safe(v) for k, v in r.items()} for r in frame.to_dict("records")]


def test_open_route_answers_as_the_routed_one(
    server: Server, closed_server: Server, trained_project: Project
) -> None:
    with Store.open(Settings(store=trained_project.store).store_url()) as store:
        _, secret = create_token(store, "direct-test", ["predict"], actor="test")
    body = orjson.dumps({"records": _records(trained_project, 5)})
    headers = {"content-type": "application/json"}
    direct = httpx.post(server.url + PREDICT, content=body, headers=headers)
    routed = httpx.post(
        closed_server.url + PREDICT,
        content=body,
        headers={**headers, "Authorization": f"Bearer {secret}"},
    )
    assert direct.status_code == routed.status_code == 200
    assert direct.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert int(direct.headers["content-length"]) == len(direct.content)
    one, other = direct.json(), routed.json()
    assert one["model"] == other["model"] == "churn"
    strip = [{k: v for k, v in p.items() if k != "id"} for p in other["predictions"]]
    assert [{k: v for k, v in p.items() if k != "id"} for p in one["predictions"]] == strip
    assert len({p["id"] for p in one["predictions"]}) == 5
    # a body sent in pieces (chunked) is read whole, as Starlette reads it
    pieces = [body[:7], body[7:100], body[100:]]
    chunked = httpx.post(server.url + PREDICT, content=iter(pieces), headers=headers)
    assert [p["score"] for p in chunked.json()["predictions"]] == [p["score"] for p in strip]


def test_open_route_errors_keep_their_bodies_and_other_methods_reach_fastapi(
    server: Server, closed_server: Server
) -> None:
    for url in (server.url, closed_server.url):  # unknown names: the same 404 when allowed
        missing = httpx.post(url + "/v1/models/nope/predict", content=b"{")
        if url == closed_server.url:
            assert missing.status_code == 401  # the token comes first, as before
            assert missing.headers["www-authenticate"].startswith("Bearer")
            continue
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
    broken = httpx.post(server.url + PREDICT, content=b"{not json")
    assert broken.status_code == 422
    assert list(broken.json()) == ["error"] and broken.json()["error"]["code"] == "invalid_input"
    assert httpx.get(server.url + PREDICT).status_code == 405  # FastAPI's answer, as before
    assert httpx.post(server.url + PREDICT + "/extra", json={}).status_code == 404


class _Router:
    """Stands for FastAPI's router: answers 299 and remembers what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await Response(status_code=299)(scope, receive, send)


def _send(app: Any, requests: Sequence[tuple[str, str, bytes]]) -> list[httpx.Response]:
    """`requests` (method, path, body) through `app` in process, one after another."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.request(m, path, content=body) for m, path, body in requests]

    return asyncio.run(run())


def _failed(method: str, path: str, params: Any, exc: MlprodError) -> Response:
    return JSONResponse({"error": {"code": exc.code, "name": params["name"]}}, exc.status)


@pytest.mark.parametrize("open_", [True, False])
def test_only_the_open_route_skips_the_router(sqlite_store: Store, open_: bool) -> None:
    router = _Router()

    async def answer(name: str, body: bytes, scope: Scope) -> Response:
        if name == "ghost":
            raise NotFoundError("no such model")
        return JSONResponse({"name": name, "body": body.decode()})

    auth = Authenticator(sqlite_store, predict_open=open_)
    app = DirectPredict(router, answer=answer, failed=_failed, auth=auth, route="the route")
    ok, ghost, *others = _send(
        app,
        [
            ("POST", PREDICT, b'{"records": []}'),
            ("POST", "/v1/models/ghost/predict", b"{}"),
            ("GET", PREDICT, b""),
            ("POST", "/v1/models/a/b/predict", b""),
            ("POST", "/v1/x", b""),
        ],
    )
    assert [r.status_code for r in others] == [299, 299, 299]
    if open_:
        assert ok.json() == {"name": "churn", "body": '{"records": []}'}
        assert ghost.status_code == 404
        assert ghost.json() == {"error": {"code": "not_found", "name": "ghost"}}
        assert router.paths == [PREDICT, "/v1/models/a/b/predict", "/v1/x"]
    else:  # tokens required: FastAPI's route and its dependency decide, as before
        assert ok.status_code == ghost.status_code == 299
        assert router.paths == [
            PREDICT, "/v1/models/ghost/predict", PREDICT, "/v1/models/a/b/predict", "/v1/x"
        ]  # fmt: skip


def test_a_crash_on_the_open_route_is_a_500_logged_by_route(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    crashed: list[Any] = []

    async def answer(name: str, body: bytes, scope: Scope) -> Response:
        raise RuntimeError(f"broken for {name}")

    class Route:
        path = "/v1/models/{name}/predict"

    auth = Authenticator(sqlite_store, predict_open=True)
    inner = DirectPredict(_Router(), answer=answer, failed=_failed, auth=auth, route=Route())
    app = CrashLog(inner, log=ThrottledLog(), on_crash=lambda s: crashed.append(s["path_params"]))
    caplog.set_level(logging.ERROR)
    answers = _send(app, [("POST", f"/v1/models/m{i}/predict", b"{}") for i in range(3)])
    assert {a.status_code for a in answers} == {500}
    assert {a.json()["error"]["code"] for a in answers} == {"internal"}
    assert crashed == [{"name": "m0"}, {"name": "m1"}, {"name": "m2"}]
    lines = [r for r in caplog.records if r.exc_info is not None]
    assert len(lines) == 1  # one kind: the route template, not each name
    assert lines[0].getMessage() == "POST /v1/models/m0/predict crashed"

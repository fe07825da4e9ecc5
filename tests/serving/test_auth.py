"""Bearer tokens against a real `mlprod serve`: 401, 403, scopes, revocation within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from mlprod.features import json_safe
from mlprod.serving import create_token, revoke_token
from mlprod.serving._auth import CACHE_SECONDS, TokenCache
from mlprod.settings import Settings
from mlprod.store import Store
from support import Project, Server

PREDICT = "/v1/models/churn/predict"
OUTCOMES = "/v1/outcomes"
WHOAMI = "/v1/admin/tokens/whoami"


@pytest.fixture(scope="module")
def store(trained_project: Project) -> Iterator[Store]:
    with Store.open(Settings(store=trained_project.store).store_url()) as opened:
        yield opened


def _body(project: Project) -> dict[str, Any]:
    frame = pd.read_csv(project.root / "customers.csv").drop(columns=["churned"]).head(2)
    return {"records": [{k: json_safe(v) for k, v in r.items()} for r in frame.to_dict("records")]}


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _assert_error(response: httpx.Response, status: int, code: str, *hidden: str) -> str:
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    for secret in hidden:
        assert secret not in message and secret not in str(response.headers)
    return message


def test_closed_predict_needs_a_token(
    closed_server: Server, trained_project: Project, store: Store
) -> None:
    body = _body(trained_project)
    missing = httpx.post(closed_server.url + PREDICT, json=body)
    assert "mlprod tokens create" in _assert_error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    pinned = httpx.post(closed_server.url + "/v1/models/churn/versions/1/predict", json=body)
    _assert_error(pinned, 401, "unauthorized")
    bogus = "mlp_0123456789ab_" + "x" * 43
    wrong = httpx.post(closed_server.url + PREDICT, json=body, headers=_bearer(bogus))
    _assert_error(wrong, 401, "unauthorized", bogus)
    basic = httpx.post(closed_server.url + PREDICT, json=body, auth=("user", "pass"))
    _assert_error(basic, 401, "unauthorized")
    _, secret = create_token(store, "app", ["predict"], actor="test")
    ok = httpx.post(closed_server.url + PREDICT, json=body, headers=_bearer(secret))
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2
    assert httpx.get(closed_server.url + "/healthz").status_code == 200  # probes need no token
    assert httpx.get(closed_server.url + "/readyz").status_code == 200


def test_admin_needs_the_admin_scope(
    closed_server: Server, trained_project: Project, store: Store
) -> None:
    predict, predict_secret = create_token(store, "app", ["predict"], actor="test")
    admin, admin_secret = create_token(store, "ops", ["admin"], actor="test")
    url = closed_server.url + WHOAMI
    _assert_error(httpx.get(url), 401, "unauthorized")
    forbidden = httpx.get(url, headers=_bearer(predict_secret))
    message = _assert_error(forbidden, 403, "forbidden", predict_secret)
    assert predict.id in message and "'admin'" in message
    allowed = httpx.get(url, headers=_bearer(admin_secret))
    assert allowed.status_code == 200
    assert allowed.json() == {
        "id": admin.id,
        "name": "ops",
        "scopes": ["admin", "outcomes", "predict"],
    }
    body = _body(trained_project)  # admin includes predict
    assert httpx.post(
        closed_server.url + PREDICT, json=body, headers=_bearer(admin_secret)
    ).is_success


def test_outcomes_need_their_own_scope(
    closed_server: Server, trained_project: Project, store: Store
) -> None:
    """A client that may score cannot move live metrics and alerts by posting labels."""
    predict, predict_secret = create_token(store, "scorer", ["predict"], actor="test")
    scored = httpx.post(
        closed_server.url + PREDICT, json=_body(trained_project), headers=_bearer(predict_secret)
    )
    assert scored.status_code == 200
    prediction = scored.json()["predictions"][0]["id"]
    body = {"outcomes": [{"prediction_id": prediction, "label": True}]}
    _assert_error(httpx.post(closed_server.url + OUTCOMES, json=body), 401, "unauthorized")
    refused = httpx.post(closed_server.url + OUTCOMES, json=body, headers=_bearer(predict_secret))
    message = _assert_error(refused, 403, "forbidden", predict_secret)
    assert predict.id in message and "'outcomes'" in message and "--scope outcomes" in message
    _, labels_secret = create_token(store, "labeller", ["outcomes"], actor="test")
    posted = httpx.post(closed_server.url + OUTCOMES, json=body, headers=_bearer(labels_secret))
    assert posted.status_code == 200 and posted.json() == {"received": 1, "duplicates": 0}
    scoring = httpx.post(closed_server.url + PREDICT, json={}, headers=_bearer(labels_secret))
    _assert_error(scoring, 403, "forbidden", labels_secret)
    _, admin_secret = create_token(store, "ops2", ["admin"], actor="test")
    again = httpx.post(closed_server.url + OUTCOMES, json=body, headers=_bearer(admin_secret))
    assert again.status_code == 200 and again.json() == {"received": 0, "duplicates": 1}


def test_open_predict_never_opens_admin(server: Server, trained_project: Project) -> None:
    body = _body(trained_project)
    assert httpx.post(server.url + PREDICT, json=body).status_code == 200  # the default: open
    _assert_error(httpx.get(server.url + WHOAMI), 401, "unauthorized")


def test_revoked_token_is_refused_within_seconds(closed_server: Server, store: Store) -> None:
    record, secret = create_token(store, "short-lived", ["admin"], actor="test")
    url = closed_server.url + WHOAMI
    assert httpx.get(url, headers=_bearer(secret)).status_code == 200  # now cached
    revoke_token(store, record.id, actor="test")
    revoked_at = time.monotonic()
    while httpx.get(url, headers=_bearer(secret)).status_code == 200:
        assert time.monotonic() - revoked_at < 5, "a revoked token still works after 5 s"
        time.sleep(0.1)
    _assert_error(httpx.get(url, headers=_bearer(secret)), 401, "unauthorized", secret)


def test_cache_asks_the_store_once_per_ttl(store: Store) -> None:
    calls: list[str] = []

    class CountingStore(Store):
        def read(self, work: Any) -> Any:
            calls.append("query")
            return super().read(work)

    record, secret = create_token(store, "cached", ["predict"], actor="test")
    now = [100.0]
    cache = TokenCache(CountingStore(store.engine, store.url), clock=lambda: now[0])
    unknown = "mlp_0123456789ab_" + "y" * 43
    assert asyncio.run(cache.lookup(secret)) == record
    assert asyncio.run(cache.lookup(secret)) == record
    assert asyncio.run(cache.lookup(unknown)) is None
    assert asyncio.run(cache.lookup(unknown)) is None  # misses are cached too
    assert len(calls) == 2
    now[0] += CACHE_SECONDS + 0.01
    assert asyncio.run(cache.lookup(secret)) == record
    assert len(calls) == 3

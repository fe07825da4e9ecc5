"""A real server merging aggregates from Redis: key-only requests, policies, events, skew."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlprod.store import Store
from support import (
    REDIS_URL,
    PrivateRedis,
    Project,
    Server,
    cli_json,
    drop_prefix,
    need_redis,
    write_aggregate_project,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]
OWN_FIELDS = {"tenure_months": 12, "monthly_charges": 70.0, "support_calls": 2, "plan": "basic"}


def trained_aggregates(root: Path, on_missing: str) -> Project:
    from mlprod.pipelines import promote, train

    project = write_aggregate_project(root, rows=1200, on_missing=on_missing)
    run = train(project.spec, store=project.store)
    promote("churn", run.version, "production", store=project.store, actor="test")
    return project


@pytest.fixture(scope="module")
def online(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Server, str]]:
    need_redis()
    prefix = f"mlprodtest{time.time_ns() % 10**10}"
    project = trained_aggregates(tmp_path_factory.mktemp("agg"), "defaults")
    # the default 20 ms lookup budget is for quiet machines; a busy one must not flag lookups
    env = {
        "MLPROD_ONLINE": REDIS_URL,
        "MLPROD_REDIS_PREFIX": prefix,
        "MLPROD_ONLINE_TIMEOUT": "0.5",
    }
    run_cli_env(project, env, "features", "materialize")
    server = Server(project, env=env)
    try:
        server.wait_ready()
        yield project, server, prefix
    finally:
        server.stop()
        drop_prefix(REDIS_URL, prefix)


def run_cli_env(project: Project, env: dict[str, str], *args: str) -> Any:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mlprod", *args], cwd=project.root,
                          env={**project.env(), **env}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def predict(server: Server, *records: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/churn/predict", json={"records": list(records)})


def admin_token(project: Project) -> str:
    from mlprod.serving import create_token

    with Store.open(project.settings().store_url()) as store:
        return create_token(store, "feeder", ["admin"], actor="test")[1]


def logged(project: Project, count: int) -> list[dict[str, Any]]:
    """The newest `count` logged records, once the flusher has stored them."""
    deadline = time.monotonic() + 20
    while True:
        rows = cli_json(project, "predictions", "export", "churn", "--since", "1h")["predictions"]
        if len(rows) >= count or time.monotonic() > deadline:
            return [row["record"] for row in rows[-count:]]
        time.sleep(0.3)


def metric(server: Server, name: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_key_only_requests_events_policies_and_skew(online: tuple[Project, Server, str]) -> None:
    project, server, _ = online
    known = predict(server, {"customer_id": "C000001", **OWN_FIELDS})
    assert known.status_code == 200, known.text
    assert "flags" not in known.json()["predictions"][0]

    unknown = predict(server, {"customer_id": "NOBODY", **OWN_FIELDS})
    assert unknown.json()["predictions"][0]["flags"] == ["entity_not_found"]
    assert metric(server, "mlprod_online_entity_not_found") == 1

    now = datetime.now(UTC)
    event = {"customer_id": "C000002", "at": now.isoformat(), "kind": "buy", "amount": 10.0}
    body = {"source": "activity", "events": [event]}
    assert httpx.post(f"{server.url}/v1/events", json=body).status_code == 401
    answer = httpx.post(f"{server.url}/v1/events", json=body,
                        headers={"Authorization": f"Bearer {admin_token(project)}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == 1
    fresh = predict(server, {"customer_id": "C000002", **OWN_FIELDS})
    assert fresh.status_code == 200

    records = logged(project, 3)
    by_key = {r["customer_id"]: r for r in records}
    assert by_key["C000002"]["events_1d"] == 1 and by_key["C000002"]["spend_7d"] == 10.0
    assert by_key["NOBODY"]["events_1d"] == 0 and by_key["NOBODY"]["basket_30d"] is None
    assert all("@features_at" in r for r in records)

    skew = cli_json(project, "features", "skew", "churn@production", "--since", "1h")
    rates = {item["feature"]: item for item in skew["features"]}
    assert skew["rows"] == 3
    assert rates["events_1d"]["mismatches"] == 1  # the live event is not in events.csv
    assert rates["tickets_7d"]["mismatches"] == 0
    events = pd.read_csv(project.root / "events.csv")
    row = {**event, "at": now.replace(tzinfo=None).isoformat()}
    pd.concat([events, pd.DataFrame([row])]).to_csv(project.root / "events.csv", index=False)
    again = cli_json(project, "features", "skew", "churn@production", "--since", "1h")
    assert all(item["mismatches"] == 0 for item in again["features"]), again


def test_requests_carrying_their_own_aggregates_are_taken_as_sent(
    online: tuple[Project, Server, str],
) -> None:
    _, server, _ = online
    full = {"customer_id": "NOBODY2", **OWN_FIELDS, "events_1d": 3, "events_7d": 9,
            "tickets_7d": 4, "spend_7d": 0.0, "spend_30d": 0.0, "basket_30d": None,
            "kinds_7d": 2, "last_kind_30d": "ticket"}  # fmt: skip
    answer = predict(server, full)
    assert answer.status_code == 200
    assert "flags" not in answer.json()["predictions"][0]  # nothing was looked up


def test_redis_down_follows_the_policy_or_answers_503(tmp_path: Path) -> None:
    """on_missing defaults: flagged and counted; reject: 422 for unknown, 503 when down."""
    need_redis()
    redis = PrivateRedis()
    redis.start()
    lenient = trained_aggregates(tmp_path / "lenient", "defaults")
    strict = trained_aggregates(tmp_path / "strict", "reject")
    # a budget a busy machine always meets: a stopped Redis refuses at once anyway
    env = {"MLPROD_ONLINE": redis.url, "MLPROD_ONLINE_TIMEOUT": "0.5"}
    run_cli_env(strict, env, "features", "materialize")
    servers = [Server(lenient, env=env), Server(strict, env=env)]
    try:
        for server in servers:
            server.wait_ready()
        soft, hard = servers
        unknown = predict(hard, {"customer_id": "NOBODY", **OWN_FIELDS})
        assert unknown.status_code == 422
        assert unknown.json()["error"]["fields"][0]["field"] == "customer_id"
        assert predict(hard, {"customer_id": "C000001", **OWN_FIELDS}).status_code == 200
        redis.stop()
        started = time.perf_counter()
        down = predict(soft, {"customer_id": "C000001", **OWN_FIELDS})
        elapsed = time.perf_counter() - started
        assert down.status_code == 200 and elapsed < 2.0
        assert down.json()["predictions"][0]["flags"] == ["features_unavailable"]
        refused = predict(hard, {"customer_id": "C000001", **OWN_FIELDS})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "features_unavailable"
        assert metric(soft, "mlprod_online_features_unavailable") == 1
        assert metric(hard, "mlprod_online_failed") == 1
        redis.start()
        run_cli_env(strict, env, "features", "materialize", "--full")
        deadline = time.monotonic() + 10
        while predict(hard, {"customer_id": "C000001", **OWN_FIELDS}).status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover by itself"
            time.sleep(0.2)
    finally:
        for server in servers:
            server.stop()
        redis.stop()

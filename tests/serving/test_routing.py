"""Routing: weights honoured, sticky by entity, shadows loaded; changes picked up live."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlprod.features import json_safe
from mlprod.pipelines import promote
from mlprod.registry import Route, set_deployment
from mlprod.serving._pool import Served, stable_fraction
from mlprod.store import LocalArtifacts, Store
from support import Project, Server, run_cli, trained, wait_until


class _Fake:
    """Stands in for a loaded version in pure routing tests (routing never scores)."""

    def __init__(self, version: int) -> None:
        self.version = version


def _served(weights: dict[int, float]) -> Served:
    return Served("churn", tuple(_Fake(v) for v in weights), tuple(weights.values()))  # type: ignore[arg-type]


def test_weights_are_honoured_within_two_points_over_10000_requests() -> None:
    served = _served({1: 95, 2: 5})
    sticky = Counter(served.choose(f"C{i:06d}").version for i in range(10_000))
    assert abs(sticky[2] / 10_000 - 0.05) < 0.02
    drawn = Counter(served.choose(None).version for _ in range(10_000))
    assert abs(drawn[1] / 10_000 - 0.95) < 0.02
    ab = Counter(_served({3: 50, 4: 50}).choose(i).version for i in range(10_000))
    assert abs(ab[3] / 10_000 - 0.5) < 0.02


def test_an_entity_always_reaches_the_same_version() -> None:
    served = _served({1: 50, 2: 50})
    for key in ("C000001", "C000002", 42):
        assert len({served.choose(key).version for _ in range(50)}) == 1
    assert stable_fraction("churn", "C1") == stable_fraction("churn", "C1")
    assert stable_fraction("churn", "C1") != stable_fraction("other", "C1")


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained(tmp_path_factory.mktemp("routes"), versions=2)


def _records(project: Project, n: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(project.root / "customers.csv").drop(columns=["churned"])
    frame = pd.concat([frame] * (n // len(frame) + 1)).head(n).reset_index(drop=True)
    frame["customer_id"] = [f"X{i:07d}" for i in range(n)]
    return [{k: json_safe(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _versions(url: str, records: list[dict[str, Any]]) -> Counter[int]:
    counts: Counter[int] = Counter()
    with httpx.Client(base_url=url, timeout=10) as client:
        for start in range(0, len(records), 500):
            answer = client.post(
                "/v1/models/churn/predict", json={"records": records[start : start + 500]}
            )
            answer.raise_for_status()
            counts.update(p["version"] for p in answer.json()["predictions"])
    return counts


def _wait_for(predicate: Any, timeout: float = 10.0) -> float:
    """Seconds until `predicate` holds. The bound catches a replica that never follows (the
    registry is polled every 0.5 s); how fast one follows is not a test's business."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not picked up within {timeout}s")


@pytest.mark.slow
def test_route_changes_reach_every_replica_without_a_failed_request(two_versions: Project) -> None:
    """Two server processes on one store; deploy, canary, rollback while a client streams."""
    replicas = [Server(two_versions), Server(two_versions)]
    answers: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        record = _records(two_versions, 1)
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                for replica in replicas:
                    answers.append(
                        client.post(
                            replica.url + "/v1/models/churn/predict", json={"records": record}
                        ).status_code
                    )

    try:
        for replica in replicas:
            replica.wait_ready()
        client = threading.Thread(target=stream)
        client.start()
        records = _records(two_versions, 10_000)
        run_cli(
            two_versions, "deploy", "churn", "--route", "1=50", "--route", "2=50", "--reason", "ab"
        )
        for replica in replicas:
            _wait_for(lambda r=replica: set(_versions(r.url, records[:200])) == {1, 2})
        split = _versions(replicas[0].url, records)
        assert abs(split[2] / 10_000 - 0.5) < 0.02
        assert split == _versions(
            replicas[1].url, records
        )  # same entity, same version, any replica
        run_cli(two_versions, "deploy", "churn", "--route", "2=100")
        for replica in replicas:
            _wait_for(lambda r=replica: set(_versions(r.url, records[:100])) == {2})
        promote("churn", 2, "production", store=two_versions.store, actor="t")
        run_cli(two_versions, "rollback", "churn", "--reason", "test")
        for replica in replicas:
            _wait_for(lambda r=replica: set(_versions(r.url, records[:100])) == {1})
        stop.set()
        client.join()
    finally:
        stop.set()
        for replica in replicas:
            replica.stop()
    assert len(answers) > 50
    assert set(answers) == {200}


@pytest.mark.slow
def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    two_versions: Project, tmp_path: Path
) -> None:
    import mlprod

    server = Server(two_versions)
    try:
        server.wait_ready()
        bundle = mlprod.load("churn@2", store=two_versions.store).folder
        intact = LocalArtifacts(tmp_path / "checked")  # another host's copy, still whole
        shutil.copytree(bundle, intact.root / "bundles" / bundle.name)
        victim = bundle / "metrics.json"
        original = victim.read_bytes()
        victim.write_bytes(original + b" ")
        try:
            refused = run_cli(two_versions, "deploy", "churn", "--route", "2=100", check=False)
            assert refused.returncode == 1 and "churn@2 cannot take traffic" in refused.stderr
            # checked against the intact copy, the route is stored; this host's copy is not
            with Store.from_settings(two_versions.settings()) as store:
                set_deployment(store, "churn", [Route(version=2)], artifacts=intact, actor="t")

            def failed() -> dict[str, str]:
                return dict(httpx.get(server.url + "/readyz").json()["failed"])

            wait_until(lambda: "churn@2" in failed(), "churn@2 refused by the server")
            assert "modified" in failed()["churn@2"]
            assert set(_versions(server.url, _records(two_versions, 50))) == {1}
        finally:
            victim.write_bytes(original)
            run_cli(two_versions, "deploy", "churn", "--clear")
    finally:
        server.stop()

"""A real server logs every prediction it answers: shadows, sampling, outages, kill -9.

Outages stop a real PostgreSQL: a private cluster started for this module, so stopping it
cannot disturb anything else using the machine's database.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.pipelines import promote, train
from mlprod.predlog import count_predictions, read_predictions
from mlprod.store import Store
from support import (
    PrivatePostgres,
    Project,
    Server,
    need_service,
    records_from,
    run_cli,
    trained,
    write_project,
)

OUTAGE_SECONDS = 60.0


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Load:
    """One client sending single-record requests back to back, keeping every answer."""

    def __init__(self, url: str, records: list[dict[str, Any]], pause: float = 0.005) -> None:
        self.url = url
        self.records = records
        self.pause = pause
        self.answered: list[str] = []  # prediction ids of 2xx answers
        self.statuses: Counter[int | str] = Counter()
        self.retry_after: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                body = {"records": [self.records[i % len(self.records)]]}
                i += 1
                try:
                    answer = client.post("/v1/models/churn/predict", json=body)
                except httpx.TransportError:
                    self.statuses["transport"] += 1
                    time.sleep(0.05)
                    continue
                self.statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    self.answered += [p["id"] for p in answer.json()["predictions"]]
                elif "retry-after" in answer.headers:
                    self.retry_after.add(answer.headers["retry-after"])
                time.sleep(self.pause)


def stored_ids(url: str) -> list[str]:
    with Store.open(url) as store:
        return list(read_predictions(store, "churn")["id"])


def wait_stored(url: str, count: int, timeout: float = 60.0) -> None:
    def enough() -> bool:
        with Store.open(url) as store:
            return count_predictions(store, "churn") >= count

    wait_for(enough, timeout, f"{count} stored predictions")


# --- logging, shadows and sampling on the embedded SQLite store


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained(tmp_path_factory.mktemp("shadow"), versions=2)


def test_every_answer_is_logged_with_its_record_score_and_latency(
    server: Server, trained_project: Project
) -> None:
    records = records_from(trained_project, 30)
    answer = httpx.post(server.url + "/v1/models/churn/predict", json={"records": records})
    predictions = answer.json()["predictions"]
    ids = [p["id"] for p in predictions]

    def logged() -> pd.DataFrame:
        with Store.open(trained_project.settings().store_url()) as store:
            frame = read_predictions(store, "churn")
        return frame[frame["id"].isin(ids)]

    wait_for(lambda: len(logged()) == 30, 10, "30 logged predictions")
    frame = logged().set_index("id").loc[ids]
    assert frame["version"].tolist() == [1] * 30
    np.testing.assert_array_equal(frame["score"], [p["score"] for p in predictions])
    assert frame["label"].tolist() == [p["label"] for p in predictions]
    assert frame["record"].tolist() == records
    assert frame["entity"].tolist() == [r["customer_id"] for r in records]
    assert (frame["latency_ms"] > 0).all() and frame["shadow_of"].isna().all()


@pytest.mark.slow
def test_shadows_score_every_request_off_the_response_path(two_versions: Project) -> None:
    run_cli(two_versions, "deploy", "churn", "--route", "1=100", "--shadow", "2")
    server = Server(two_versions)
    try:
        server.wait_ready()
        records = records_from(two_versions, 40)
        answer = httpx.post(server.url + "/v1/models/churn/predict", json={"records": records})
        answered = answer.json()["predictions"]
        assert {p["version"] for p in answered} == {1}  # a shadow never answers
        url = two_versions.settings().store_url()
        wait_stored(url, 80, timeout=30)
        assert metric(server.url, "mlprod_shadows_scored") == 40
    finally:
        server.stop()
        run_cli(two_versions, "deploy", "churn", "--clear")
    with Store.open(url) as store:
        frame = read_predictions(store, "churn")
    shadows = frame[frame["version"] == 2].set_index("shadow_of")
    assert sorted(shadows.index) == sorted(p["id"] for p in answered)
    expected = mlprod.load("churn@2", store=two_versions.store).score(pd.DataFrame(records))
    by_answer = shadows.loc[[p["id"] for p in answered], "score"]
    np.testing.assert_allclose(by_answer, expected, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_a_deployment_logs_its_sample_rate(two_versions: Project) -> None:
    run_cli(two_versions, "deploy", "churn", "--route", "1=100", "--sample-rate", "0.25")
    url = two_versions.settings().store_url()
    with Store.open(url) as store:
        before = count_predictions(store, "churn")
    server = Server(two_versions)
    try:
        server.wait_ready()
        records = records_from(two_versions, 4000)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for start in range(0, 4000, 500):
                body = {"records": records[start : start + 500]}
                client.post("/v1/models/churn/predict", json=body).raise_for_status()
        wait_for(lambda: metric(server.url, "mlprod_predlog_pending") == 0, 10, "the flush")
        scored = 'mlprod_predictions_total{model="churn",version="1"}'
        assert metric(server.url, scored) == 4000  # every record scored, a quarter logged
    finally:
        server.stop()
        run_cli(two_versions, "deploy", "churn", "--clear")
    with Store.open(url) as store:
        logged = count_predictions(store, "churn") - before
    assert abs(logged - 1000) < 4 * (4000 * 0.25 * 0.75) ** 0.5  # 4 sigma: 1000 +- 110


# --- real PostgreSQL: a stopped database, a killed server, a full spool


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    try:
        cluster = PrivatePostgres()
        cluster.start()
    except (OSError, subprocess.CalledProcessError) as exc:
        need_service("PostgreSQL server binaries", f"cannot start a private cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def pg_project(private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = write_project(tmp_path_factory.mktemp("pg"), rows=1500, store=private_pg.url)
    run = train(project.spec, settings=project.settings())
    promote("churn", run.version, "production", settings=project.settings(), actor="t")
    return project


@pytest.fixture
def stoppable(private_pg: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private cluster, started again after the test whatever happens."""
    try:
        yield private_pg
    finally:
        if not _running(private_pg):
            private_pg.start()


def _running(cluster: PrivatePostgres) -> bool:
    return (cluster.data / "postmaster.pid").exists()


def _clear_log(url: str) -> None:
    with Store.open(url) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM predictions")


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_down_for_a_minute_costs_no_prediction(
    pg_project: Project, stoppable: PrivatePostgres, tmp_path: Path
) -> None:
    _clear_log(stoppable.url)
    server = Server(pg_project, env={"MLPROD_SPOOL": str(tmp_path / "spool")})
    try:
        server.wait_ready()
        with Load(server.url, records_from(pg_project, 500)) as load:
            wait_for(lambda: len(load.answered) >= 200, 30, "answers before the outage")
            stoppable.stop()
            before = len(load.answered)
            time.sleep(OUTAGE_SECONDS / 2)
            assert metric(server.url, "mlprod_predlog_pending") > 0  # held in the spool
            time.sleep(OUTAGE_SECONDS / 2)
            during = len(load.answered) - before
            stoppable.start()
            time.sleep(1.0)
        wait_stored(stoppable.url, len(load.answered))
        assert metric(server.url, "mlprod_predlog_failures") > 0
    finally:
        server.stop()
    stored = stored_ids(stoppable.url)
    assert during > 1000  # the server kept answering while the database was down
    assert dict(load.statuses) == {200: len(load.answered)}
    assert sorted(stored) == sorted(load.answered)  # every answer once, nothing else


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_9_mid_load_loses_nothing_and_duplicates_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "project", rows=1500, store=postgres_url)
    promote("churn", train(project.spec, settings=project.settings()).version, "production",
            settings=project.settings(), actor="t")  # fmt: skip
    server = Server(project)
    try:
        server.wait_ready()
        with Load(server.url, records_from(project, 500), pause=0) as load:
            wait_for(lambda: len(load.answered) >= 1500, 60, "answers before the kill")
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()
        assert server.process.returncode == -signal.SIGKILL
    finally:
        server.stop()
    restarted = Server(project)  # same working directory, so the same spool folder
    try:
        restarted.wait_ready()
        wait_stored(postgres_url, len(load.answered))
    finally:
        restarted.stop()
    stored = stored_ids(postgres_url)
    assert len(stored) == len(set(stored))
    assert set(load.answered) <= set(stored)
    assert len(stored) - len(load.answered) <= 1  # at most the request the kill cut off


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("policy", ["shed", "drop"])
def test_a_full_spool_sheds_or_drops_and_counts_every_record(
    pg_project: Project, stoppable: PrivatePostgres, policy: str, tmp_path: Path
) -> None:
    _clear_log(stoppable.url)
    env = {"MLPROD_SPOOL": str(tmp_path / "spool"), "MLPROD_SPOOL_FULL": policy,
           "MLPROD_SPOOL_MAX_BYTES": "30000"}  # fmt: skip
    server = Server(pg_project, env=env)
    try:
        server.wait_ready()
        stoppable.stop()
        with Load(server.url, records_from(pg_project, 200), pause=0.002) as load:
            wait_for(lambda: sum(load.statuses.values()) >= 300, 30, "300 requests")
        dropped = metric(server.url, "mlprod_predlog_dropped")
        direct = httpx.post(
            server.url + "/v1/models/churn/predict", json={"records": load.records[:1]}
        )
        stoppable.start()
        wait_stored(stoppable.url, len(load.answered) - int(dropped))
        time.sleep(1.0)  # nothing more arrives
    finally:
        server.stop()
    stored = set(stored_ids(stoppable.url))
    assert stored <= set(load.answered)
    if policy == "shed":
        assert load.statuses[503] > 10 and load.retry_after == {"1"}
        assert dropped == 0 and stored == set(load.answered)  # every 2xx is logged
        assert direct.status_code == 503 and direct.json()["error"]["code"] == "overloaded"
        assert str(tmp_path) not in direct.text  # the spool's path stays in the server log
        assert str(tmp_path) in server.output()
        assert server.output().count("/predict failed: ") == 1  # one line per 10 s, not per 503
    else:
        assert set(load.statuses) == {200} and direct.status_code == 200
        assert dropped > 0 and len(stored) == len(load.answered) - dropped


def test_predictions_export_hands_the_log_to_analysts(
    server: Server, trained_project: Project, tmp_path: Path
) -> None:
    import json
    import sys

    records = records_from(trained_project, 12)
    url = trained_project.settings().store_url()
    with Store.open(url) as store:
        before = count_predictions(store, "churn")  # the server's other tests logged some
    answer = httpx.post(server.url + "/v1/models/churn/predict", json={"records": records})
    answered = {p["id"]: p for p in answer.json()["predictions"]}
    wait_stored(url, before + len(answered), timeout=30)

    def export(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mlprod", "predictions", "export", "churn", *args]
        return subprocess.run(command, cwd=trained_project.root, env=trained_project.env(),
                              capture_output=True, text=True, check=True, timeout=60)  # fmt: skip

    export("--since", "1h", "--output", str(tmp_path / "log.parquet"))
    frame = pd.read_parquet(tmp_path / "log.parquet").set_index("id").loc[list(answered)]
    assert frame["score"].tolist() == [p["score"] for p in answered.values()]
    assert frame["input.plan"].tolist() == [r["plan"] for r in records]
    assert [json.loads(text) for text in frame["record"]] == records
    document = json.loads(export("--since", "1h", "--json").stdout)
    exported = {row["id"]: row for row in document["predictions"]}
    assert set(answered) <= set(exported)
    assert all(exported[i]["score"] == p["score"] for i, p in answered.items())
    assert exported[next(iter(answered))]["record"] == records[0]

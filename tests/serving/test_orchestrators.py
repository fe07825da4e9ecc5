"""What an orchestrator relies on, on real `mlprod serve` processes.

Keep-alive clients are never turned away by a concurrency limit they do not reach; a
request answered 504 leaves no prediction-log rows; a store that is down at start leaves
the server up and not ready until it comes back; SIGTERM under load resets no connection
and ends within the grace period; a broken routed version leaves the rest serving.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlprod.predlog import count_predictions
from mlprod.store import Store
from support import Project, Server, free_port, records_from, trained

START = 180.0  # seconds a server may take to start on a busy machine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """churn@1 in production, its store on SQLite or PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return trained(tmp_path / "project", rows=1500, store=url)


def store_url(project: Project) -> str:
    return project.settings().store_url()


# --- the concurrency limit counts requests in flight, not keep-alive connections


def test_one_sequential_keep_alive_client_is_never_busy(trained_project: Project) -> None:
    server = Server(trained_project, env={"MLPROD_MAX_CONCURRENCY": "1"})
    body = {"records": records_from(trained_project, 1)}
    try:
        server.wait_ready(timeout=START)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            statuses = Counter(
                client.post("/v1/models/churn/predict", json=body).status_code for _ in range(300)
            )
    finally:
        server.stop()
    assert statuses == Counter({200: 300})


def test_as_many_keep_alive_clients_as_the_limit_are_never_busy(
    trained_project: Project,
) -> None:
    clients, each = 12, 40
    server = Server(trained_project, env={"MLPROD_MAX_CONCURRENCY": str(clients)})
    body = {"records": records_from(trained_project, 1)}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def run() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(each):
                status = client.post("/v1/models/churn/predict", json=body).status_code
                with lock:
                    statuses[status] += 1

    try:
        server.wait_ready(timeout=START)
        threads = [threading.Thread(target=run) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        busy = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert statuses == Counter({200: clients * each})
    assert "mlprod_guard_rejected_busy 0.0" in busy


@pytest.mark.slow
def test_beyond_the_limit_requests_are_still_refused(trained_project: Project) -> None:
    """The sibling of the two above: the limit does bite when requests really overlap."""
    server = Server(
        trained_project,
        env={
            "MLPROD_MAX_CONCURRENCY": "1",
            "MLPROD_REQUEST_TIMEOUT": "30",
            "MLPROD_QUEUE_TIMEOUT": "0",
        },
    )
    body = {"records": records_from(trained_project, 3000)}
    try:
        server.wait_ready(timeout=START)
        with httpx.Client(base_url=server.url, timeout=30) as slow:
            held = threading.Thread(
                target=lambda: [slow.post("/v1/models/churn/predict", json=body) for _ in range(5)]
            )
            held.start()
            empty = {"records": []}
            seen = Counter(
                httpx.post(server.url + "/v1/models/churn/predict", json=empty).status_code
                for _ in range(200)
            )
            held.join()
    finally:
        server.stop()
    assert seen[503] > 0


# --- a request answered 504 is not logged as answered


@pytest.mark.slow
def test_requests_answered_504_leave_no_prediction_rows(project: Project) -> None:
    size = 20_000  # scored in a worker thread, which runs on after the 504; on the fast path
    # 5,000 records could be answered within the budget on a quiet machine
    env = {"MLPROD_REQUEST_TIMEOUT": "0.05", "MLPROD_MAX_BODY_BYTES": str(16 * 2**20),
           "MLPROD_MAX_RECORDS": str(size)}  # fmt: skip
    server = Server(project, env=env)
    big = {"records": records_from(project, size)}
    small = {"records": records_from(project, 7)}  # scored at once, within the budget
    try:
        server.wait_ready(timeout=START)
        late = Counter(
            httpx.post(server.url + "/v1/models/churn/predict", json=big, timeout=60).status_code
            for _ in range(8)
        )
        answered = httpx.post(server.url + "/v1/models/churn/predict", json=small, timeout=30)
    finally:
        server.stop()  # SIGTERM: the prediction log flushes its spool before exiting
    assert late[504] >= 1 and set(late) <= {200, 504}, late
    assert answered.status_code == 200
    with Store.open(store_url(project)) as store:  # the answered ones, and only those
        assert count_predictions(store, "churn") == 7 + size * late[200]


# --- a store that is down at start: the server comes up, not ready, and waits for it


class Forwarder:
    """A TCP port that forwards to `target` once `open()` is called; refused before."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []  # every connection's two ends, closed by close()

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        for end in self.sockets:
            end.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_store_down_at_start_leaves_the_server_up_and_not_ready_until_it_is_back(
    postgres_url: str, tmp_path: Path
) -> None:
    import sqlalchemy as sa

    project = trained(tmp_path / "project", rows=1500, store=postgres_url)
    real = sa.make_url(postgres_url)
    forwarder = Forwarder((real.host or "127.0.0.1", real.port or 5432))
    down = real.set(port=forwarder.port).render_as_string(hide_password=False)
    server = Server(project, env={"MLPROD_STORE": down})
    try:
        server.wait_ready(timeout=START)  # /healthz answers although the store does not
        time.sleep(6.0)  # longer than the old server lived
        assert server.process.poll() is None, server.output()
        not_ready = httpx.get(server.url + "/readyz", timeout=10)
        assert not_ready.status_code == 503
        assert "cannot reach the metadata store" in not_ready.json()["store"]
        forwarder.open()  # the database is back
        deadline = time.monotonic() + 60
        while httpx.get(server.url + "/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.2)
        answer = httpx.post(
            server.url + "/v1/models/churn/predict",
            json={"records": records_from(project, 3)},
            timeout=30,
        )
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 3
    finally:
        server.stop()
        forwarder.close()
    assert "retrying" in server.output()


# --- a broken routed version: every other model keeps serving, the broken one is reported


@pytest.mark.slow
def test_a_broken_version_leaves_the_other_models_serving_and_is_reported(
    project: Project,
) -> None:
    import mlprod
    from mlprod.monitoring import list_alerts
    from mlprod.pipelines import promote, train
    from support import SMALL_SPEC

    other = project.root / "other.yaml"
    other.write_text(
        SMALL_SPEC.replace("name: churn", "name: other").replace(
            "[logistic_regression, lightgbm]", "[logistic_regression]"
        ),
        encoding="utf-8",
    )
    settings = project.settings()
    train(other, settings=settings)
    promote("other", 1, "production", settings=settings, actor="test")
    bundle = mlprod.load("other@1", settings=settings).folder
    (bundle / "metrics.json").write_bytes((bundle / "metrics.json").read_bytes() + b" ")
    server = Server(project)
    try:
        server.wait_ready(timeout=START)
        ready = httpx.get(server.url + "/readyz", timeout=10)
        answer = httpx.post(
            server.url + "/v1/models/churn/predict",
            json={"records": records_from(project, 2)},
            timeout=30,
        )
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
    finally:
        server.stop()
    assert ready.status_code == 200, ready.text
    assert ready.json()["models"] == {"churn": 1}
    assert "modified" in ready.json()["failed"]["other@1"]
    assert answer.status_code == 200
    assert 'mlprod_version_failed{model="other",version="1"} 1.0' in metrics
    with Store.open(store_url(project)) as store:
        alerts = list_alerts(store, "other", open_only=True)
        assert [(a.kind, a.subject, a.version) for a in alerts] == [("serving", "version 1", 1)]
        assert "other@1 cannot be served" in alerts[0].message
        assert list_alerts(store, "churn") == []


# --- SIGTERM under load: readiness off, answers through the notice, no reset, on time


class KeepAliveLoad:
    """Clients on keep-alive connections, as they reach a pod through a load balancer.

    Each sends requests back to back on its connection. Once the pod is taken out of the
    balancer (`PROPAGATION` seconds after SIGTERM), a client whose connection closes does
    not come back; until then it reconnects. Every request that got no answer on an open
    connection is a reset.
    """

    PROPAGATION = 0.3

    def __init__(self, url: str, body: dict[str, Any], clients: int) -> None:
        self.url, self.body = url, body
        self.statuses: Counter[int] = Counter()
        self.resets: list[str] = []
        self.sigterm_at: float | None = None
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _listed(self) -> bool:
        at = self.sigterm_at
        return at is None or time.monotonic() - at < self.PROPAGATION

    def _run(self) -> None:
        while self._listed():
            with httpx.Client(base_url=self.url, timeout=30) as client:
                if not self._session(client):
                    return

    def _session(self, client: httpx.Client) -> bool:
        """Requests on one connection until it closes; False once the client should stop."""
        while True:
            try:
                answer = client.post("/v1/models/churn/predict", json=self.body)
            except httpx.ConnectError:
                return self._listed()  # refused: the listener is gone
            except httpx.TransportError as exc:
                with self.lock:
                    self.resets.append(repr(exc))
                return False
            with self.lock:
                self.statuses[answer.status_code] += 1
            if answer.headers.get("connection") == "close":
                return True

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)


@pytest.mark.slow
def test_sigterm_under_load_resets_nothing_and_ends_within_the_grace_period(
    trained_project: Project,
) -> None:
    grace = 4.0
    server = Server(trained_project, env={"MLPROD_GRACE_PERIOD": str(grace)})
    try:
        server.wait_ready(timeout=START)
        load = KeepAliveLoad(server.url, {"records": records_from(trained_project, 20)}, 8)
        deadline = time.monotonic() + 60
        while sum(load.statuses.values()) < 16:  # every client is under way
            assert time.monotonic() < deadline, load.statuses
            time.sleep(0.1)
        load.sigterm_at = sent_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        ready = httpx.get(server.url + "/readyz", timeout=10).status_code
        code = server.process.wait(timeout=grace + 30)
        elapsed = time.monotonic() - sent_at
        load.join()
    finally:
        server.stop()
    assert load.resets == []
    assert ready == 503
    assert set(load.statuses) == {200}, load.statuses
    assert code in (0, -signal.SIGTERM)
    assert elapsed < grace + 1.0, elapsed

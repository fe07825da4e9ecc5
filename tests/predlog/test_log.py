"""The prediction log end to end: spool, flusher, real databases, a real outage, kill -9.

The outage is a real TCP proxy in front of PostgreSQL that these tests close and reopen:
the flusher sees refused connections and dropped sockets exactly as it would when the
database host goes away, while the machine's PostgreSQL keeps serving other tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlprod.errors import SpoolFullError
from mlprod.predlog import count_predictions, prediction_entry, read_predictions
from mlprod.predlog._log import PredictionLog
from mlprod.predlog._spool import Spool
from mlprod.store import Store
from support import run_and_kill


def prediction(i: int, **extra: Any) -> dict[str, Any]:
    row = {
        "id": f"{i:032x}",
        "model": "churn",
        "version": 3,
        "at": datetime.now(UTC),
        "record": {"plan": "pro", "tenure_months": i},
        "score": 0.5,
        "label": True,
        "latency_ms": 1.5,
        "entity": f"c{i}",
        "shadow_of": None,
    }
    row.update(extra)
    return row


def stored_ids(store: Store) -> list[str]:
    return sorted(read_predictions(store, "churn")["id"])


def flushed_through(
    url: str, spool: Path, entries: list[dict[str, Any]]
) -> tuple[PredictionLog, list[str]]:
    """Submit `entries` to a fresh log on the store at `url`, flush, stop: (log, stored ids)."""
    with Store.open(url) as store:
        log = PredictionLog(store, Spool(spool, max_bytes=1 << 20), policy="shed")
        log.start()
        log.submit(entries)
        assert log.flush(10)
        log.stop()
        return log, stored_ids(store)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Proxy:
    """A TCP forwarder on 127.0.0.1 that can go down and come back on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        self._spawn(self._accept, listener)

    def down(self) -> None:
        """Refuse new connections and cut every open one, as a dead host would."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        for sock in [s for s in (listener,) if s is not None] + sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join()
        self._threads = []
        for sock in [s for s in (listener,) if s is not None] + sockets:
            sock.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                self._spawn(self._pump, client, upstream)
                self._spawn(self._pump, upstream, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[Proxy, str]]:
    """(proxy, URL of the test database through the proxy); the proxy starts up."""
    url = sa.make_url(postgres_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.up()
    try:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    finally:
        proxy.down()


@pytest.fixture
def direct(postgres_url: str) -> Iterator[Store]:
    """The same database, not through the proxy: what is really stored."""
    with Store.open(postgres_url) as store:
        yield store


@pytest.mark.postgres
def test_rows_submitted_during_an_outage_land_exactly_once(
    proxied: tuple[Proxy, str], direct: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, url = proxied
    caplog.set_level(logging.WARNING, logger="mlprod.serving")
    with Store.open(url) as store:
        log = PredictionLog(store, Spool(tmp_path, max_bytes=1 << 20), policy="shed", interval=0.05)
        log.start()
        try:
            log.submit([prediction(i) for i in range(100)])
            assert log.flush(10)
            assert count_predictions(direct) == 100

            proxy.down()
            for start in (100, 200, 300):
                log.submit([prediction(i) for i in range(start, start + 100)])
            wait_for(lambda: log.stats()["failures"] >= 3)
            assert log.stats()["pending"] == 300
            assert count_predictions(direct) == 100  # nothing got through the outage

            proxy.up()
            assert log.flush(20)
            stats = log.stats()
        finally:
            log.stop(5)
    assert stored_ids(direct) == [f"{i:032x}" for i in range(400)]
    assert stats["spooled"] == 400
    assert stats["flushed"] == 400
    assert stats["inserted"] == 400
    assert stats["pending"] == 0
    assert stats["dropped"] == 0
    assert stats["failures"] >= 3
    outage = [r for r in caplog.records if "cannot write prediction logs" in r.message]
    assert len(outage) == 1  # one warning per outage, not one per attempt
    assert any("takes prediction logs again" in r.message for r in caplog.records)


@pytest.mark.postgres
def test_replaying_the_same_spool_twice_stores_each_id_once(
    postgres_url: str, direct: Store, tmp_path: Path
) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20).open()
    rows = [prediction(i) for i in range(250)]
    spool.append(rows)
    assert spool.path is not None
    twin = spool.path.with_name(spool.path.name[:-8] + "0badc0de")
    shutil.copytree(spool.path, twin)  # the same rows again, as a crashed twin would leave

    with Store.open(postgres_url) as store:
        log = PredictionLog(store, spool, policy="shed", batch_rows=100)
        log.start()
        assert log.flush(20)
        log.stop(5)
        stats = log.stats()
    assert stored_ids(direct) == sorted(row["id"] for row in rows)
    assert stats["recovered"] == 250
    assert stats["flushed"] == 500
    assert stats["inserted"] == 250
    assert not twin.exists()


@pytest.mark.postgres
def test_drop_policy_counts_every_row_it_drops(
    postgres_url: str, direct: Store, tmp_path: Path
) -> None:
    spool = Spool(tmp_path, max_bytes=3000).open()
    with Store.open(postgres_url) as store:
        log = PredictionLog(store, spool, policy="drop")
        for i in range(60):  # the flusher is not running yet: the spool fills up
            log.submit([prediction(i)])
        before = log.stats()
        log.start()
        assert log.flush(10)
        log.stop(5)
        after = log.stats()
    stored = count_predictions(direct)
    assert 0 < before["spooled"] < 60
    assert before["spooled"] + before["dropped"] == 60
    assert after["dropped"] == 60 - stored
    assert after["flushed"] == stored == before["spooled"]
    # the rows kept are the first ones, in order; the rest were refused, not lost silently
    assert stored_ids(direct) == [f"{i:032x}" for i in range(stored)]


def test_shed_policy_raises_a_503(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'm.db'}") as store:
        spool = Spool(tmp_path / "spool", max_bytes=1000).open()
        log = PredictionLog(store, spool, policy="shed")
        accepted = 0
        while spool.pending_bytes + 300 < spool.max_bytes:  # a row is about 270 bytes
            log.submit([prediction(accepted)])
            accepted += 1
        with pytest.raises(SpoolFullError) as raised:
            log.submit([prediction(accepted), prediction(accepted + 1)])
        log.stop()
    assert raised.value.status == 503
    assert log.stats()["dropped"] == 0
    assert log.stats()["spooled"] == accepted


def test_rows_the_store_refuses_are_set_aside_not_blocking(tmp_path: Path) -> None:
    rows = [prediction(i) for i in range(10)]
    del rows[4]["record"]
    rows[7]["version"] = "seven"
    log, ids = flushed_through(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "spool", rows)
    assert ids == [f"{i:032x}" for i in (0, 1, 2, 3, 5, 6, 8, 9)]
    assert log.stats()["rejected"] == 2
    assert log.stats()["flushed"] == 8
    rejected = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 2
    assert "lacks record" in rejected[0]


def test_one_bad_row_inside_a_request_entry_costs_only_that_row(
    tmp_path: Path, store_url: str
) -> None:
    """Bisection reaches into an entry: its other rows and the other entries are stored."""
    records = [{"plan": "pro", "tenure_months": i} for i in range(40)]
    answers = [{"id": f"{i:032x}", "version": 3, "score": 0.5, "label": True} for i in range(40)]
    answers[17]["version"] = "seventeen"
    now = datetime.now(UTC)
    entries = [
        prediction_entry("churn", records[:20], answers[:20], at=now, latency_ms=2.0),
        prediction_entry("churn", records[20:], answers[20:], at=now, latency_ms=2.0),
    ]
    log, ids = flushed_through(store_url, tmp_path / "spool", entries)
    assert ids == [f"{i:032x}" for i in range(40) if i != 17]
    assert log.stats()["flushed"] == 39
    assert log.stats()["rejected"] == 1
    (line,) = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    assert '"seventeen"' in line


def test_stop_leaves_what_it_cannot_flush_for_the_next_start(tmp_path: Path) -> None:
    """A store that is not there: stop gives up in time, the next start delivers."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with Store.open(url) as store:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE predictions RENAME TO predictions_away")
        log = PredictionLog(store, Spool(tmp_path / "spool", max_bytes=1 << 20), policy="shed")
        log.start()
        log.submit([prediction(i) for i in range(5)])
        started = time.monotonic()
        log.stop(timeout=0.5)
        assert time.monotonic() - started < 3
        assert log.stats()["pending"] == 5
        assert log.stats()["failures"] >= 1
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE predictions_away RENAME TO predictions")

        again = PredictionLog(store, Spool(tmp_path / "spool", max_bytes=1 << 20), policy="shed")
        again.start()
        assert again.flush(10)
        again.stop()
        assert stored_ids(store) == [f"{i:032x}" for i in range(5)]
    assert again.stats()["recovered"] == 5


def test_submit_only_appends_to_the_spool(tmp_path: Path) -> None:
    """The request path never waits on the database: rows reach it through the flusher
    (what that costs a request is measured in benchmarks/serve.py)."""
    with Store.open(f"sqlite:///{tmp_path / 'm.db'}") as store:
        spool = Spool(tmp_path / "spool", max_bytes=1 << 30).open()
        log = PredictionLog(store, spool, policy="shed")
        for i in range(2000):
            log.submit([prediction(i)])
        count = "SELECT count(*) FROM predictions"
        assert store.read(lambda conn: conn.exec_driver_sql(count).scalar_one()) == 0
        assert log.stats()["pending"] == 2000
        log.start()
        assert log.flush(30)
        log.stop()
        assert stored_ids(store) == [f"{i:032x}" for i in range(2000)]


CHILD = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from mlprod.store import Store
    from mlprod.predlog._log import PredictionLog
    from mlprod.predlog._spool import Spool

    store = Store.open(sys.argv[2])
    log = PredictionLog(store, Spool(Path(sys.argv[1]), max_bytes=1 << 30, segment_bytes=65536),
                        policy="shed", batch_rows=200, interval=0.01)
    log.start()
    i = 0
    while True:
        log.submit([{"id": f"{i:032x}", "model": "churn", "version": 1,
                     "at": datetime.now(UTC), "record": {"n": i}, "score": 0.5,
                     "label": None, "latency_ms": 1.0}])
        os.write(1, f"{i}\\n".encode())  # acknowledged: the request could be answered
        i += 1
    """
)


@pytest.mark.postgres
def test_a_server_killed_with_sigkill_loses_nothing_and_duplicates_nothing(
    postgres_url: str, direct: Store, tmp_path: Path
) -> None:
    base = tmp_path / "spool"
    acked = run_and_kill(CHILD, str(base), postgres_url, acked=3000, tmp_path=tmp_path)
    assert (tmp_path / "spool").exists()
    before = count_predictions(direct)

    with Store.open(postgres_url) as store:  # the restart: another pid on the same host
        log = PredictionLog(store, Spool(base, max_bytes=1 << 30), policy="shed")
        log.start()
        assert log.flush(30)
        log.stop(5)
    numbers = sorted(int(i, 16) for i in read_predictions(direct, "churn")["id"])
    assert numbers == list(range(len(numbers)))  # each id once, no gaps
    assert acked <= len(numbers) <= acked + 1  # plus at most the append in flight
    assert before < len(numbers)  # the restart delivered what the dead server had not
    assert [p.name for p in base.iterdir() if p.is_dir()] == []
    assert os.getpid() != 0

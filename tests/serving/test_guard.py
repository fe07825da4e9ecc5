"""The Guard's limits on real sockets: 413, 503 + Retry-After, 504, and draining on SIGTERM.

The concurrency and time-budget tests wrap the Guard around a tiny ASGI app that sleeps
on request, served by a real uvicorn on 127.0.0.1 in a thread, so requests can be held
in flight on purpose. Body limits and shutdown are also tested on `mlprod serve` itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import orjson
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from mlprod.serving._guard import DRAIN_SECONDS, Guard, GuardState
from support import Project, Server, free_port

LIMIT = 64 * 1024


class SleepyApp:
    """Answers ``{"bytes": n}`` after reading the body and sleeping ``?s=`` seconds.

    ``/block`` sleeps in a worker thread (like a sync endpoint), which cannot be
    cancelled. Records every call, so tests can tell whether a request reached it.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.finished: list[str] = []
        self.threads_done = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.calls.append(scope["path"])
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        seconds = float(parse_qs(scope["query_string"].decode()).get("s", ["0"])[0])
        if scope["path"] == "/block":
            await anyio.to_thread.run_sync(self._block, seconds)
        else:
            await asyncio.sleep(seconds)
        body = orjson.dumps({"bytes": size, "path": scope["path"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        self.finished.append(scope["path"])

    def _block(self, seconds: float) -> None:
        time.sleep(seconds)
        self.threads_done += 1


@contextmanager
def serve_in_thread(app: Any, *, lifespan: str = "off") -> Iterator[tuple[str, uvicorn.Server]]:
    """A real uvicorn on 127.0.0.1 in a thread (no signal handlers off the main thread)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def sleepy() -> SleepyApp:
    return SleepyApp()


def guarded(app: SleepyApp, **limits: Any) -> Guard:
    options: dict[str, Any] = {
        "max_body_bytes": LIMIT,
        "max_concurrency": 4,
        "request_timeout": 5.0,
        **limits,
    }
    return Guard(app, state=GuardState(), **options)


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """mlprod's error shape and nothing else: {"error": {"code", "message"}}."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    assert "Traceback" not in message and "/" not in message.replace("/s", "")
    return body["error"]


# --- concurrency: a short bounded wait for a slot, then 503 with Retry-After


def test_beyond_the_limit_answers_503_at_once_and_health_stays_open(sleepy: SleepyApp) -> None:
    guard = guarded(sleepy, max_concurrency=2, queue_timeout=0)
    with serve_in_thread(guard) as (url, _), ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(httpx.get, url + "/work?s=1.5", timeout=10) for _ in range(2)]
        wait_for(lambda: guard.stats()["in_flight"] == 2)
        started = time.monotonic()
        busy = httpx.get(url + "/work?s=0", timeout=10)
        assert time.monotonic() - started < 0.5  # answered at once, not queued
        error = assert_error(busy, 503, "busy")
        assert busy.headers["retry-after"] == "1"
        assert "2 requests in flight" in error["message"]
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200  # exempt
        assert [f.result().status_code for f in slow] == [200, 200]
        assert httpx.get(url + "/work?s=0", timeout=10).status_code == 200  # slots came back
    assert sleepy.calls.count("/work") == 3  # the rejected request never reached the app
    assert guard.stats() == {
        "in_flight": 0, "waiting": 0, "rejected_busy": 1, "timed_out": 0, "too_large": 0
    }  # fmt: skip


def test_beyond_the_limit_a_request_waits_for_the_next_free_slot(sleepy: SleepyApp) -> None:
    guard = guarded(sleepy, max_concurrency=1, queue_timeout=10.0)
    with serve_in_thread(guard) as (url, _), ThreadPoolExecutor(4) as pool:
        held = pool.submit(httpx.get, url + "/work?s=2", timeout=20)  # long enough to queue two
        wait_for(lambda: guard.stats()["in_flight"] == 1)
        queued = [pool.submit(httpx.get, url + f"/work?s=0.1&n={n}", timeout=10) for n in (1, 2)]
        wait_for(lambda: guard.stats()["waiting"] == 2)
        assert sleepy.calls == ["/work"]  # the waiting requests have not reached the app
        assert [f.result().status_code for f in (held, *queued)] == [200, 200, 200]
    assert sleepy.calls == ["/work"] * 3 and sleepy.finished == ["/work"] * 3
    assert guard.stats() == {
        "in_flight": 0, "waiting": 0, "rejected_busy": 0, "timed_out": 0, "too_large": 0
    }  # fmt: skip


def test_the_wait_is_bounded_in_time_and_in_length(sleepy: SleepyApp) -> None:
    guard = guarded(sleepy, max_concurrency=1, queue_timeout=3.0, request_timeout=30.0)
    with serve_in_thread(guard) as (url, _), ThreadPoolExecutor(12) as pool:
        held = pool.submit(httpx.get, url + "/work?s=10", timeout=30)  # outlasts every wait
        wait_for(lambda: guard.stats()["in_flight"] == 1)
        started = time.monotonic()
        late = httpx.get(url + "/work?s=0", timeout=10)  # nothing frees within 3 s
        assert 3.0 <= time.monotonic() - started < 8.0
        assert_error(late, 503, "busy")
        # eight waiting per slot at most: the ninth is refused without waiting
        waiting = [pool.submit(httpx.get, url + "/work?s=0", timeout=10) for _ in range(8)]
        wait_for(lambda: guard.stats()["waiting"] == 8)
        started = time.monotonic()
        assert_error(httpx.get(url + "/work?s=0", timeout=10), 503, "busy")
        assert time.monotonic() - started < 2.0  # refused before the 3 s wait could end
        assert [f.result().status_code for f in waiting] == [503] * 8
        assert held.result().status_code == 200
    assert sleepy.calls == ["/work"]  # no refused request reached the app
    assert guard.stats()["rejected_busy"] == 10 and guard.stats()["in_flight"] == 0


def test_time_spent_waiting_counts_against_the_budget(sleepy: SleepyApp) -> None:
    guard = guarded(sleepy, max_concurrency=1, queue_timeout=5.0, request_timeout=4.0)
    with serve_in_thread(guard) as (url, _), ThreadPoolExecutor(2) as pool:
        held = pool.submit(httpx.get, url + "/work?s=2", timeout=10)
        wait_for(lambda: guard.stats()["in_flight"] == 1)
        # waits up to 2 s, then has what is left of 4 s for 3.5 s of work: a 504, where
        # a budget that started after the wait would let it finish (a 200)
        late = httpx.get(url + "/work?s=3.5", timeout=10)
        assert_error(late, 504, "timeout")
        assert held.result().status_code == 200
    assert guard.stats()["timed_out"] == 1 and guard.stats()["rejected_busy"] == 0


# --- time budget: 504, and the slot is free again at once


@pytest.mark.parametrize("path", ["/slow", "/block"])
def test_over_budget_answers_504_and_frees_the_slot(sleepy: SleepyApp, path: str) -> None:
    guard = guarded(sleepy, max_concurrency=1, request_timeout=0.3)
    with serve_in_thread(guard) as (url, _):
        started = time.monotonic()
        late = httpx.get(url + f"{path}?s=2", timeout=10)
        assert 0.3 <= time.monotonic() - started < 1.5
        error = assert_error(late, 504, "timeout")
        assert "0.3 s" in error["message"]
        assert guard.stats()["in_flight"] == 0
        follow = httpx.get(url + "/work?s=0", timeout=10)  # one slot only: it must be free
        assert follow.status_code == 200 and follow.json()["path"] == "/work"
        if path == "/block":  # a thread cannot be stopped: it runs on, then the app stops
            wait_for(lambda: sleepy.threads_done == 1 and not guard._abandoned)
        alive = httpx.get(url + "/work?s=0", timeout=10)
        assert alive.status_code == 200
    assert path not in sleepy.finished  # the late app never wrote a second response
    assert guard.stats()["timed_out"] == 1 and guard.stats()["rejected_busy"] == 0


def test_bulk_writes_have_their_own_budget(sleepy: SleepyApp) -> None:
    """Outcomes may take longer than a prediction; a busy machine must not 504 them."""
    budgets = {"/v1/outcomes": (5.0, "MLPROD_WRITE_TIMEOUT")}
    guard = guarded(sleepy, request_timeout=0.3, budgets=budgets)
    with serve_in_thread(guard) as (url, _):
        stored = httpx.post(url + "/v1/outcomes?s=0.8", content=b"[]", timeout=10)
        predicted = httpx.post(url + "/v1/models/churn/predict?s=0.8", content=b"{}", timeout=10)
    assert stored.status_code == 200 and stored.json()["path"] == "/v1/outcomes"
    assert "0.3 s (MLPROD_REQUEST_TIMEOUT)" in assert_error(predicted, 504, "timeout")["message"]
    assert guard.stats()["timed_out"] == 1


def test_a_fast_answer_is_untouched_by_the_budget(sleepy: SleepyApp) -> None:
    guard = guarded(sleepy, request_timeout=1.0)
    with serve_in_thread(guard) as (url, _):
        answer = httpx.post(url + "/work?s=0.2", content=b"x" * 1000, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"bytes": 1000, "path": "/work"}
    assert guard.stats()["timed_out"] == 0


# --- body size: 413 by Content-Length before reading, and mid-stream for chunked bodies


def _read_response(sock: socket.socket) -> bytes:
    """Status line, headers and the Content-Length body of one response, as raw bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    length = int(lengths[0].split(b":")[1]) if lengths else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _http(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def assert_413_before_the_body(url: str, limit: int) -> bytes:
    """Declare a body one byte over the limit, send none of it: 413 must arrive anyway."""
    with socket.create_connection(_http(url), timeout=5) as sock:
        sock.sendall(
            b"POST /work HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        head = _read_response(sock)
    assert head.startswith(b"HTTP/1.1 413 ")
    return head


def assert_413_while_streaming(url: str, limit: int, path: str = "/work") -> bytes:
    """Stream chunks past the limit; the 413 must arrive before the body is finished."""
    chunk = b"x" * 16384
    sent = 0
    with socket.create_connection(_http(url), timeout=5) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        while sent <= limit + len(chunk):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        head = _read_response(sock)  # the terminating 0-chunk has not been sent
        started = time.monotonic()
        while sock.recv(65536):  # after a short drain, the server closes the connection
            pass
        assert time.monotonic() - started < DRAIN_SECONDS + 2
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    return head


def test_declared_oversize_body_gets_413_without_reaching_the_app(sleepy: SleepyApp) -> None:
    guard = guarded(sleepy)
    with serve_in_thread(guard) as (url, _):
        head = assert_413_before_the_body(url, LIMIT)
        small = httpx.post(url + "/work", content=b"y" * LIMIT, timeout=10)
    body = orjson.loads(head.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "too_large" and f"{LIMIT:,} bytes" in body["error"]["message"]
    assert small.status_code == 200 and small.json()["bytes"] == LIMIT  # the limit is inclusive
    assert sleepy.calls == ["/work"]  # only the small one
    assert guard.stats()["too_large"] == 1


def test_chunked_body_gets_413_as_soon_as_it_passes_the_limit(sleepy: SleepyApp) -> None:
    guard = guarded(sleepy)
    with serve_in_thread(guard) as (url, _):
        assert_413_while_streaming(url, LIMIT)
        chunked = httpx.post(url + "/work", content=iter([b"z" * 1000] * 10), timeout=10)
        assert chunked.status_code == 200 and chunked.json()["bytes"] == 10_000
    assert sleepy.finished == ["/work"]  # the oversized request never produced an answer
    assert guard.stats() == {
        "in_flight": 0, "waiting": 0, "rejected_busy": 0, "timed_out": 0, "too_large": 1
    }  # fmt: skip


# --- readiness: off while draining


def test_readiness_turns_off_when_draining_and_on_lifespan_shutdown(sleepy: SleepyApp) -> None:
    state = GuardState()
    guard = Guard(sleepy, max_body_bytes=LIMIT, max_concurrency=1, request_timeout=1, state=state)
    with serve_in_thread(guard, lifespan="on") as (url, server):
        assert httpx.get(url + "/readyz", timeout=5).status_code == 200
        state.draining = True
        answer = httpx.get(url + "/readyz", timeout=5)
        assert answer.status_code == 503 and answer.json() == {"ready": False, "draining": True}
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200  # alive, not ready
        state.draining = False
        server.should_exit = True
        wait_for(lambda: state.draining)  # lifespan.shutdown seen by the guard


# --- the real `mlprod serve`: body limits and SIGTERM


def test_mlprod_serve_enforces_the_configured_body_limit(trained_project: Project) -> None:
    limit = 50_000
    server = Server(trained_project, env={"MLPROD_MAX_BODY_BYTES": str(limit)})
    try:
        server.wait_ready()
        head = assert_413_before_the_body(server.url, limit)
        assert b"too_large" in head
        assert_413_while_streaming(server.url, limit, path="/v1/models/churn/predict")
        ok = httpx.post(server.url + "/v1/models/churn/predict", json={"records": []})
        assert ok.status_code != 413
        metrics = httpx.get(server.url + "/metrics").text
        assert "mlprod_guard_too_large 2.0" in metrics
    finally:
        server.stop()


def _listening_addresses(port: int) -> set[str]:
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                    addresses.add(address)
    return addresses


def _post_slowly(server: Server, body: bytes, split: int) -> socket.socket:
    """Start a predict request and send only part of its body: it stays in flight."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(
        b"POST /v1/models/churn/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:split]
    )
    return sock


def test_sigterm_turns_readiness_off_drains_and_exits_within_grace(
    trained_project: Project,
) -> None:
    import pandas as pd

    from mlprod.features import json_safe

    grace = 4.0
    env = {"MLPROD_GRACE_PERIOD": str(grace), "MLPROD_REQUEST_TIMEOUT": "30"}
    server = Server(trained_project, env=env)
    try:
        server.wait_ready()
        assert _listening_addresses(server.port) in ({"0100007F"}, set())  # 127.0.0.1 only
        frame = pd.read_csv(trained_project.root / "customers.csv").drop(columns=["churned"])
        records = [
            {k: json_safe(v) for k, v in r.items()} for r in frame.head(3).to_dict("records")
        ]
        body = orjson.dumps({"records": records})
        in_flight = _post_slowly(server, body, split=len(body) // 2)
        time.sleep(0.2)  # the server has the headers and half the body
        sent_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        readiness: list[tuple[float, int]] = []
        while time.monotonic() - sent_at < 3:
            try:
                status = httpx.get(server.url + "/readyz", timeout=1).status_code
            except httpx.TransportError:
                status = 0  # refused: the listener is closed
            readiness.append((time.monotonic() - sent_at, status))
            if status == 0:
                break
            time.sleep(0.05)
        statuses = [status for _, status in readiness]
        assert 503 in statuses and 200 not in statuses[1:], readiness
        assert statuses[-1] == 0  # after the notice, new connections are refused
        not_ready = [at for at, status in readiness if status == 503]
        assert max(not_ready) - min(not_ready) >= 0.5, readiness  # balancers get time to see it
        in_flight.sendall(body[len(body) // 2 :])
        answer = _read_response(in_flight)
        in_flight.close()
        assert answer.startswith(b"HTTP/1.1 200 ")
        code = server.process.wait(timeout=grace + 5)
        assert time.monotonic() - sent_at < grace + 1.0
        assert code in (0, -signal.SIGTERM)
    finally:
        server.stop()


def test_sigterm_cuts_a_stuck_request_at_the_grace_period(trained_project: Project) -> None:
    grace = 2.0
    env = {"MLPROD_GRACE_PERIOD": str(grace), "MLPROD_REQUEST_TIMEOUT": "30"}
    server = Server(trained_project, env=env)
    try:
        server.wait_ready()
        stuck = _post_slowly(server, b'{"records": []}' + b" " * 100, split=5)
        time.sleep(0.2)
        sent_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=grace + 5)
        elapsed = time.monotonic() - sent_at
        stuck.close()
        assert grace - 0.5 <= elapsed < grace + 1.0  # it waited for the request, then gave up
    finally:
        server.stop()

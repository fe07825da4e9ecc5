"""Limits that keep a busy server answering: body size, concurrency, time budget, draining.

`Guard` is plain ASGI middleware, outermost in the stack, so it decides before FastAPI
parses anything:

* a body over ``max_body_bytes`` gets 413 at once: by its Content-Length before a byte
  of it is read, or, for chunked bodies, the moment the running count passes the limit;
* beyond ``max_concurrency`` requests in flight a request waits for a free slot, in
  arrival order, at most ``queue_timeout`` seconds (within its time budget) and behind
  at most ``QUEUE_FACTOR`` x ``max_concurrency`` others; then the answer is 503 with
  ``Retry-After``. Answering 503 at once made overload worse: clients that retry at
  once kept the loop busy refusing them, and accepted throughput fell to a fraction of
  capacity, while a short bounded wait costs nothing but the waiting;
* a request that has not started its response within ``request_timeout`` gets 504, and
  its slot is free for the next request at that moment. A request counts as in flight
  from its arrival until its last byte is sent, not until its task has unwound: on a
  keep-alive connection the client's next request may arrive before that;
* the app and the guard race to answer: whoever claims the request's `Budget` first
  answers, so a request answered 504 never has its predictions logged as answered.

Health endpoints skip the concurrency limit and the time budget: an orchestrator must
be able to tell a busy server from a dead one. `run_server` adds the shutdown half:
SIGTERM turns /readyz to 503 first, the server keeps answering through a short notice,
every answer from then on carries ``Connection: close`` (a keep-alive client learns the
connection ends before it sends on it again, so it never meets a reset), then uvicorn
drains in-flight requests, the app stops its threads in what is left, and the process
exits within the grace period.

Example::

    app.add_middleware(Guard, max_body_bytes=2**21, max_concurrency=64,
                       request_timeout=2.0, state=GuardState())
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("mlprod.serving")

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
DRAIN_SECONDS = 1.0  # after a 413, read and discard the rest of the body this long at most
DRAIN_BYTES = 1 << 20  # ... and this much at most, then close the connection
READINESS_NOTICE = 1.0  # after SIGTERM, keep serving this long with /readyz at 503
STOP_RESERVE = 1.5  # of the grace period, at most this much is kept for the app's own stop
QUEUE_FACTOR = 8  # requests that may wait for a slot, per slot
SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL before a waiting one gets it


@dataclass
class GuardState:
    """Counters and the draining flag, shared by the Guard, the server runner and /metrics."""

    in_flight: int = 0
    waiting: int = 0
    rejected_busy: int = 0
    timed_out: int = 0
    too_large: int = 0
    draining: bool = False
    deadline: float | None = None  # time.monotonic() by which the process must have exited

    def time_left(self, default: float) -> float:
        """Seconds until the exit deadline (`default` when no shutdown is under way)."""
        if self.deadline is None:
            return default
        return max(self.deadline - time.monotonic(), 0.0)

    def stats(self) -> dict[str, int]:
        """What /metrics reports: requests in flight now, and rejections since start."""
        return {
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "rejected_busy": self.rejected_busy,
            "timed_out": self.timed_out,
            "too_large": self.too_large,
        }


BUDGET_KEY = "mlprod.budget"  # where the guard leaves a request's `Budget` in its scope


class Budget:
    """Who answers one request: the app, with its work done, or the guard, with a 504.

    The app claims it before anything that only an answered request may do (logging its
    predictions); the guard claims it when the time budget runs out. Whoever comes second
    steps aside: the app drops its side effects, the guard waits for the app's answer.
    Thread-safe: scoring may run in a worker thread.
    """

    def __init__(self, deadline: float = float("inf")) -> None:
        self.deadline = deadline  # the event loop's time when the guard answers 504
        self._lock = threading.Lock()
        self._owner: str | None = None

    def _claim(self, owner: str) -> bool:
        with self._lock:
            if self._owner is None:
                self._owner = owner
            return self._owner == owner

    def claim_answer(self) -> bool:
        """True if the app answers this request; False once the guard answered 504."""
        return self._claim("app")

    def claim_timeout(self) -> bool:
        """True if the guard may answer 504; False once the app committed to its answer."""
        return self._claim("guard")


def budget_of(scope: Scope) -> Budget | None:
    """The request's `Budget`, when a `Guard` watches it (None outside one)."""
    budget = scope.get(BUDGET_KEY)
    return budget if isinstance(budget, Budget) else None


class _Answered(BaseException):
    """Raised into the downstream app once the guard has answered for it.

    A BaseException, so the app's catch-all error handlers let it through instead of
    trying to send a second response (which would be dropped anyway).
    """


class Guard:
    """Pure ASGI middleware enforcing body size, concurrency and time budget; see the module."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_concurrency: int,
        request_timeout: float,
        queue_timeout: float = 0.0,
        budgets: Mapping[str, tuple[float, str]] | None = None,
        state: GuardState | None = None,
    ) -> None:
        """`budgets` gives paths their own time budget and the setting that names it.

        Bulk writes (outcomes) may take longer than a prediction: sharing the prediction's
        budget made a busy machine answer them 504 while they were still being stored.
        """
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_concurrency = max_concurrency
        self.request_timeout = request_timeout
        self.queue_timeout = queue_timeout
        self.budgets = dict(budgets or {})
        self.state = state or GuardState()
        self._abandoned: set[asyncio.Task[None]] = set()
        self._queue: deque[asyncio.Future[None]] = deque()  # waiting for a slot, in order

    def stats(self) -> dict[str, int]:
        """The shared counters; see `GuardState.stats`."""
        return self.state.stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._watch_lifespan(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _closing(send, self.state)
        if scope["path"] in HEALTH_PATHS:
            await self._health(scope, receive, send)
        else:
            await self._guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            self.state.too_large += 1
            await _too_large(receive, send, self.max_body_bytes, more=True)
            return
        budget, setting = self.budgets.get(
            scope["path"], (self.request_timeout, "MLPROD_REQUEST_TIMEOUT")
        )
        waited = time.monotonic()
        slot = await self._slot(min(self.queue_timeout, budget))
        if slot is None:
            self.state.rejected_busy += 1
            message = (
                f"the server is at its limit of {self.max_concurrency} requests in flight "
                "(MLPROD_MAX_CONCURRENCY); retry after a second"
            )
            await send_error(send, 503, "busy", message, [(b"retry-after", b"1")])
            return
        left = max(budget - (time.monotonic() - waited), 0.0)
        try:
            await self._within_budget(scope, receive, send, slot, (budget, left, setting))
        finally:
            slot.release()

    async def _slot(self, wait: float) -> _Slot | None:
        """A slot now, or the first one freed within `wait` seconds; None if none came."""
        if self.state.in_flight < self.max_concurrency and not self._queue:  # the fast path
            self.state.in_flight += 1
            return _Slot(self.state, self._hand_over)
        if wait <= 0 or len(self._queue) >= QUEUE_FACTOR * self.max_concurrency:
            return None
        turn = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        self.state.waiting += 1
        try:
            await asyncio.wait({turn}, timeout=wait)
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._hand_over()  # handed a slot as we were cancelled: pass it on
            raise
        finally:
            self.state.waiting -= 1
            if not turn.done():
                turn.cancel()  # gave up: leave the queue (at most QUEUE_FACTOR per slot long)
                self._queue.remove(turn)
        return _Slot(self.state, self._hand_over) if not turn.cancelled() else None

    def _hand_over(self) -> None:
        """A slot is free: the first request still waiting takes it, else it is free."""
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot changes hands: in flight stays the same
                return
        self.state.in_flight -= 1

    async def _within_budget(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        slot: _Slot,
        limits: tuple[float, float, str],
    ) -> None:
        """Run the app as a task; if it has not started answering in time, answer 504.

        `limits` is the whole budget, what is left of it after waiting for the slot, and
        the setting that names it.
        """
        budget, left, setting = limits
        loop = asyncio.get_running_loop()
        claim = Budget(deadline=loop.time() + left)
        scope[BUDGET_KEY] = claim
        # one future settles the race: the app ends, its answer starts, or the budget runs
        # out (cheaper per request than a second task and `asyncio.wait` over both)
        decided = loop.create_future()
        exchange = _Exchange(receive, send, self.max_body_bytes, self.state, slot, decided)
        task = loop.create_task(self._downstream(scope, exchange))
        task.add_done_callback(partial(_settle, decided))
        timer = loop.call_later(left, _settle, decided)
        try:
            await decided
        except BaseException:
            task.cancel()  # we were cancelled (shutdown timeout): take the app down with us
            raise
        finally:
            timer.cancel()
        if task.done() or exchange.started or not claim.claim_timeout():
            await task  # answering already, or committed to its answer: it is nearly done
            return
        exchange.answered = True  # whatever the app sends from now on is dropped
        task.cancel()
        self._abandon(task)
        self.state.timed_out += 1
        message = (
            f"no answer within {budget:g} s ({setting}); retry, or send fewer records per request"
        )
        await send_error(send, 504, "timeout", message)
        slot.release()

    async def _downstream(self, scope: Scope, exchange: _Exchange) -> None:
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except* _Answered:
            pass  # the guard already answered this request

    def _abandon(self, task: asyncio.Task[None]) -> None:
        """Keep a cancelled task referenced until it ends, and swallow how it ends.

        Work in a thread (a sync endpoint) cannot be interrupted: the task ends when the
        thread returns. Its slot is free already; its result is no longer wanted.
        """
        self._abandoned.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._abandoned.discard(done)
            if not done.cancelled() and done.exception() is not None:
                log.warning("a request that timed out later failed: %r", done.exception())

        task.add_done_callback(finished)

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.state.draining and scope["path"] == "/readyz":
            body = orjson.dumps({"ready": False, "draining": True})
            await _send_json(send, 503, body)
            return
        await self.app(scope, receive, send)

    def _watch_lifespan(self, receive: Receive) -> Receive:
        """Notice shutdown under any server: uvicorn sends it after draining, so it is late."""

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                self.state.draining = True
            return message

        return watched


def _closing(send: Send, state: GuardState) -> Send:
    """Once draining, every answer says ``Connection: close``: keep-alive ends cleanly."""

    async def closing(message: Message) -> None:
        if state.draining and message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return closing


class _Slot:
    """One request's place among those in flight, given back exactly once.

    It goes back when the response's last byte is sent, not when the app's task ends:
    on a keep-alive connection the client's next request arrives as soon as it has the
    answer, and counting the old one still would turn that request away.
    """

    def __init__(self, state: GuardState, free: Callable[[], None]) -> None:
        self.state = state
        self.free = free
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.free()


class _Exchange:
    """One request's receive and send as the app sees them.

    Counts body bytes as they arrive (413 the moment they pass the limit), notices when
    the response starts (the time budget ends there) and ends (the slot is free), and goes
    silent once the guard has answered, so a late or cancelled app cannot write a second
    response.
    """

    def __init__(
        self,
        receive: Receive,
        send: Send,
        limit: int,
        state: GuardState,
        slot: _Slot,
        decided: asyncio.Future[None],
    ) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.state = state
        self.slot = slot
        self.decided = decided  # settled when the response starts: the budget ends there
        self.received = 0
        self.started = False
        self.answered = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                await self._reject(bool(message.get("more_body", False)))
        return message

    async def _reject(self, more: bool) -> None:
        self.state.too_large += 1
        if self.started or self.answered:
            raise _Answered  # the app already answered: all we can do is stop it
        self.answered = True
        self._start()
        await _too_large(self._receive, self._send, self.limit, more=more)
        raise _Answered

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self._start()
        await self._send(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.slot.release()

    def _start(self) -> None:
        self.started = True
        _settle(self.decided)


def _settle(decided: asyncio.Future[None], *_: object) -> None:
    """Settle the guard's race (a task's done callback, the timer, the answer's start)."""
    if not decided.done():
        decided.set_result(None)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser refuses these before they reach us
    return None


async def _too_large(receive: Receive, send: Send, limit: int, *, more: bool) -> None:
    """413 now, then a short lingering read before the connection closes.

    The whole answer goes out before we read on, so the client sees it while it is
    still sending. Reading a little of the rest before closing keeps the kernel from
    resetting the connection (which can destroy the answer in flight); the bounds keep
    a client from making us read an endless body.
    """
    message = (
        f"the request body is larger than {limit:,} bytes (MLPROD_MAX_BODY_BYTES); "
        "send fewer records per request"
    )
    body = orjson.dumps({"error": {"code": "too_large", "message": message}})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [*_json_headers(body), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": True})
    if more:
        await _drain(receive)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _drain(receive: Receive) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_SECONDS
    drained = 0
    while drained <= DRAIN_BYTES and loop.time() < deadline:
        try:
            message = await asyncio.wait_for(receive(), deadline - loop.time())
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An error in mlprod's shape, ``{"error": {"code", "message"}}``, and nothing else."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    await _send_json(send, status, body, headers)


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    start_headers = [*_json_headers(body), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


# --- shutdown: readiness off first, then drain, then exit within the grace period


class _DrainingServer(uvicorn.Server):
    """uvicorn, with readiness turned off the moment SIGTERM arrives.

    uvicorn's own order is: close the listening socket, wait for in-flight requests,
    then send ``lifespan.shutdown``, too late to tell anyone. Here the signal handler
    flips the flag at once, and on SIGTERM the server keeps accepting for a short
    notice so load balancers polling /readyz see 503 and stop sending traffic. Ctrl+C
    (SIGINT) skips the notice. Notice plus drain stay within `grace_period`.
    """

    def __init__(self, config: uvicorn.Config, state: GuardState, grace_period: float) -> None:
        super().__init__(config)
        self.guard_state = state
        self.grace_period = grace_period
        self.notice = 0.0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.guard_state.draining:
            self.guard_state.draining = True
            self.guard_state.deadline = time.monotonic() + self.grace_period
            if sig == signal.SIGTERM:
                self.notice = min(READINESS_NOTICE, self.grace_period / 2)
            # the app's own stop (flushing the log, joining its threads) comes after the drain
            reserve = min(STOP_RESERVE, self.grace_period / 4)
            drain: Any = max(
                self.grace_period - self.notice - reserve, 0.0
            )  # a float: see run_server
            self.config.timeout_graceful_shutdown = drain
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.notice
        while loop.time() < until and not self.force_exit:
            await asyncio.sleep(min(0.05, max(until - loop.time(), 0.0)))
        await super().shutdown(sockets)


def run_server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    grace_period: float,
    state: GuardState,
    sockets: list[socket.socket] | None = None,
    **options: Any,
) -> None:
    """Serve `app` until SIGTERM or Ctrl+C, then drain and exit within `grace_period`.

    `state` is the app's `GuardState` (``app.state.guard``): SIGTERM sets its draining
    flag, which turns /readyz to 503. `sockets`, when given, are already listening (shared
    by several worker processes) and `host`/`port` only label them. `options` go to
    `uvicorn.Config`.

    Example::

        run_server(app, host="127.0.0.1", port=8000, grace_period=10, state=app.state.guard)
    """
    options.setdefault("log_level", "warning")
    options.setdefault("access_log", False)
    # The log flusher and the live counter are Python threads: with the default 5 ms switch
    # interval either can hold the GIL that long while a request waits, which is the p99.
    sys.setswitchinterval(SWITCH_INTERVAL)
    # Everything loaded so far (libraries, models) lives as long as the server: keep it out
    # of the collector's full passes, which otherwise pause every thread for tens of ms.
    gc.collect()
    gc.freeze()
    # uvicorn annotates the timeout as int but hands it to asyncio.wait_for, which takes seconds
    # as a float: rounding up would break the promise to exit within the grace period.
    drain: Any = grace_period
    config = uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=drain, **options)
    _DrainingServer(config, state, grace_period).run(sockets=sockets)

"""Unexpected exceptions: a 500 for the client, one traceback per kind for the log.

Starlette's own catch-all re-raises after answering, so the server would print every
traceback again; a client that found a crash could then fill the disk by repeating the
request. `CrashLog` answers the 500 itself and keeps the exception there, and its
`ThrottledLog` writes one line (with the traceback) per kind of failure every few
seconds, saying how many like it were held back.

Example::

    app.add_middleware(CrashLog, log=ThrottledLog(10.0))
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("mlprod.serving")
INTERNAL_BODY = orjson.dumps(
    {"error": {"code": "internal", "message": "internal error; see the server log"}}
)


class ThrottledLog:
    """One log line per key every `seconds`, saying how many like it were held back.

    A server shedding thousands of requests a second must not write thousands of lines,
    nor a client that found a crash fill the disk with the same traceback. Keys are kinds
    (route and error type, never a value from the request), so there are few of them.
    """

    def __init__(
        self, seconds: float = 10.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def error(self, key: str, message: str, *, exc_info: BaseException | None = None) -> bool:
        """Log `message` (with the traceback of `exc_info`) unless `key` logged lately."""
        now = self.clock()
        if now - self._last.get(key, -self.seconds) < self.seconds:
            self._held[key] += 1
            return False
        held = self._held.pop(key, 0)
        self._last[key] = now
        more = f" ({held} more like it since the last line)" if held else ""
        log.error("%s%s", message, more, exc_info=exc_info)
        return True


def crash_kind(scope: Mapping[str, Any], exc: BaseException) -> str:
    """Method, route template (not the URL, which a client varies) and exception type."""
    route = getattr(scope.get("route"), "path", "-")
    return f"{scope.get('method', '-')} {route} {type(exc).__qualname__}"


class CrashLog:
    """Plain ASGI middleware: an exception below it becomes a JSON 500 and a throttled line."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        log: ThrottledLog | None = None,
        on_crash: Callable[[Scope], None] | None = None,
    ) -> None:
        self.app = app
        self.log = log or ThrottledLog()
        self.on_crash = on_crash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)  # `send` as is: nothing added per request
        except Exception as exc:  # the last stop before the server's own log
            if self.on_crash is not None:
                self.on_crash(scope)
            where = f"{scope['method']} {scope['path']}"
            self.log.error(crash_kind(scope, exc), f"{where} crashed", exc_info=exc)
            # ASGI servers refuse a second response start with RuntimeError: if the crash
            # came after the answer began, the client sees the connection close instead
            with suppress(RuntimeError):
                await _internal_error(send)


async def _internal_error(send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(INTERNAL_BODY)),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": INTERNAL_BODY})

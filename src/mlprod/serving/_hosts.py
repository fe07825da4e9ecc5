"""The Host header check, and the headers that keep dashboard pages out of frames.

DNS rebinding points a name the attacker controls at 127.0.0.1: a browser then sends
requests to a local server with ``Host: attacker.example``. A server that answers only
the names it is known by (the bind address and localhost unless ``MLPROD_ALLOWED_HOSTS``
says otherwise) turns those requests into a 400 before any route sees them. Probes
(`/healthz`, `/readyz`) answer whatever the Host, since orchestrators call them by the
pod's address and they reveal nothing.

`HostCheck` is plain ASGI middleware. A Host value seen allowed once is remembered, so a
busy server pays one set lookup per request.

Example::

    app.add_middleware(HostCheck, allowed=settings.host_names())
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBE_PATHS = frozenset({"/healthz", "/readyz"})
PAGE_PREFIX = "/ui"
PAGE_HEADERS = (
    (b"x-frame-options", b"SAMEORIGIN"),  # its own pages frame the run report
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-content-type-options", b"nosniff"),
)
REMEMBERED = 256  # distinct allowed Host values kept (names times ports: a handful)


def host_name(value: str) -> str:
    """The name in a Host header, lower case, without its port (``[::1]:80`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def host_allowed(name: str, allowed: Iterable[str]) -> bool:
    """Exact names match; ``*.example.com`` matches every name under example.com."""
    for pattern in allowed:
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


class HostCheck:
    """400 for a Host the server is not known by; page headers on everything under /ui.

    `allowed` None lets every Host through (``MLPROD_ALLOWED_HOSTS=*``).
    """

    def __init__(
        self, app: ASGIApp, *, allowed: frozenset[str] | None, setting: str = "MLPROD_ALLOWED_HOSTS"
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.setting = setting
        self._seen: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.allowed is not None and path not in PROBE_PATHS:
            raw = _header(scope, b"host")
            if raw not in self._seen:
                name = host_name(raw.decode("latin-1"))
                if not host_allowed(name, self.allowed):
                    await self._refuse(scope, name, send)
                    return
                if len(self._seen) < REMEMBERED:
                    self._seen.add(raw)
        if path.startswith(PAGE_PREFIX):
            send = _with_page_headers(send)
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, name: str, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        shown = name[:100] or "(none)"
        message = (
            f"Host {shown!r} is not a name this server answers to (allowed: "
            f"{', '.join(sorted(self.allowed or ()))}); if clients reach it by that name, "
            f"add it to {self.setting} (comma-separated, *.example.com for subdomains)"
        )
        body = orjson.dumps({"error": {"code": "bad_host", "message": message}})
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, key: bytes) -> bytes:
    for name, value in scope["headers"]:
        if name == key:
            return bytes(value)
    return b""


def _with_page_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *PAGE_HEADERS]}
        await send(message)

    return sending

"""The open prediction route, answered without FastAPI's routing and dependency resolution.

While predictions need no token, ``POST /v1/models/{name}/predict`` has nothing for
FastAPI to resolve, yet resolving it (the bearer scheme, the scope dependency, the path
and body parameters) cost about a quarter of each single-record request. `DirectPredict`
sits inside the guard, the crash log and the Host check, so those still apply, and
answers that route itself: the same handler, the same error bodies and metrics through
the same renderer. Everything else, and the route itself whenever tokens are required,
goes on to FastAPI, whose route also keeps the OpenAPI document as it was.

Example::

    app.add_middleware(DirectPredict, answer=answer, failed=failed, auth=auth, route=route)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mlprod.errors import MlprodError
from mlprod.serving._auth import Authenticator

PREDICT_PATH = re.compile(r"/v1/models/([^/]+)/predict")  # Starlette's {name}: [^/]+
Answer = Callable[[str, bytes, Scope], Awaitable[Response]]
Failed = Callable[[str, str, Mapping[str, Any], MlprodError], Response]


class DirectPredict:
    """Plain ASGI middleware answering the open predict route; see the module.

    `answer(name, body, scope)` scores a request, `failed(method, path, path_params, exc)`
    renders an `MlprodError` as the app's exception handler does, `auth` says whether
    predictions are open (checked per request), and `route` is FastAPI's route for the
    same path, left in the scope as the router would (the crash log names it).
    """

    def __init__(
        self, app: ASGIApp, *, answer: Answer, failed: Failed, auth: Authenticator, route: Any
    ) -> None:
        self.app = app
        self.answer = answer
        self.failed = failed
        self.auth = auth
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            PREDICT_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        if found is None or "predict" not in self.auth.open_scopes:
            await self.app(scope, receive, send)
            return
        name = found[1]
        scope["path_params"] = {"name": name}
        scope["route"] = self.route
        try:
            response = await self.answer(name, await _body(receive), scope)
        except MlprodError as exc:
            response = self.failed("POST", scope["path"], scope["path_params"], exc)
        await response(scope, receive, send)


async def _body(receive: Receive) -> bytes:
    """The request body, as Starlette's `Request.body` reads it (a disconnect raises)."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        return bytes(message.get("body", b""))  # the usual case: one message
    chunks: list[bytes] = []
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        message = await receive()

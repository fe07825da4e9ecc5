"""Bearer tokens on the REST routes: predict and outcomes may be open, admin never.

Routes declare what they need with ``Depends(require_scope("predict"))``,
``Depends(require_scope("outcomes"))`` or ``Depends(require_scope("admin"))``; every
route on `admin_router` needs admin by construction, so a new management route cannot
be left open by forgetting a line.
Verified tokens are cached for `CACHE_SECONDS`, so a busy server does not query the
store on every request and a revoked token still stops working within seconds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, overload

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from mlprod.errors import ForbiddenError, UnauthorizedError
from mlprod.serving._tokens import TokenRecord, verify_token
from mlprod.store import Store

CACHE_SECONDS = 3.0  # revocation reaches every server within this, plus one request
CACHE_ENTRIES = 1024
_bearer = HTTPBearer(auto_error=False, description="A token from `mlprod tokens create`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class TokenCache:
    """Answers of `verify_token` for a few seconds, unknown secrets included.

    Keys are the secrets' sha256 digests, so the cache holds no secret. Caching misses
    too means a client hammering with a bad token costs one query per `ttl`, not one per
    request. Used from the event loop only; the store is queried in a worker thread.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = CACHE_SECONDS,
        max_entries: int = CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[float, TokenRecord | None]] = {}

    async def lookup(self, secret: str) -> TokenRecord | None:
        """The active token behind `secret`, or None; the store is asked at most once per ttl."""
        key = hashlib.sha256(secret.encode("utf-8")).hexdigest()
        now = self.clock()
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await run_in_threadpool(verify_token, self.store, secret)
        self._remember(key, record, now)
        return record

    def _remember(self, key: str, record: TokenRecord | None, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (now + self.ttl, record)


class Authenticator:
    """What the app consults on every guarded request; lives on ``app.state.auth``."""

    def __init__(
        self,
        store: Store,
        *,
        predict_open: bool,
        outcomes_open: bool = False,
        ttl: float = CACHE_SECONDS,
    ) -> None:
        opened = {"predict": predict_open, "outcomes": outcomes_open}
        self.open_scopes = frozenset(scope for scope, is_open in opened.items() if is_open)
        self.cache = TokenCache(store, ttl=ttl)

    async def authorize(self, credentials: str | None, scope: str) -> TokenRecord | None:
        """The token allowed to act with `scope`; None only for an open route.

        Raises UnauthorizedError (401) without a valid token, ForbiddenError (403) when
        the token lacks the scope. Messages never echo the secret.
        """
        if scope in self.open_scopes:
            return None
        if not credentials:
            raise UnauthorizedError(
                f"this route needs a bearer token with scope {scope!r}: send "
                "`Authorization: Bearer <secret>`; create one with "
                f"`mlprod tokens create NAME --scope {scope}`"
            )
        token = await self.cache.lookup(credentials)
        if token is None:
            raise UnauthorizedError(
                "the bearer token is unknown or revoked; `mlprod tokens list` shows active "
                "tokens and `mlprod tokens create` makes a new one"
            )
        if not token.allows(scope):
            raise ForbiddenError(
                f"token {token.id} ({token.name}) has scope(s) {', '.join(token.scopes)}; "
                f"this route needs {scope!r}. Create one with "
                f"`mlprod tokens create NAME --scope {scope}`"
            )
        return token


@overload
def require_scope(
    scope: Literal["admin"],
) -> Callable[[Request, Credentials], Awaitable[TokenRecord]]: ...
@overload
def require_scope(
    scope: Literal["predict", "outcomes"],
) -> Callable[[Request, Credentials], Awaitable[TokenRecord | None]]: ...
def require_scope(scope: str) -> Callable[[Request, Credentials], Awaitable[Any]]:
    """A FastAPI dependency that lets a request through only with a token holding `scope`.

    Example::

        @app.get("/v1/admin/thing", dependencies=[Depends(require_scope("admin"))])
    """

    async def dependency(request: Request, credentials: Credentials) -> TokenRecord | None:
        auth: Authenticator = request.app.state.auth
        secret = credentials.credentials if credentials is not None else None
        token = await auth.authorize(secret, scope)
        request.state.token = token  # for handlers that want to know who is calling
        return token

    return dependency


def admin_router() -> APIRouter:
    """Routes under /v1/admin, every one of them requiring an admin token."""
    router = APIRouter(
        prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_scope("admin"))]
    )

    @router.get("/tokens/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        """The calling token's id, name and scopes: a cheap check that a token works."""
        token: TokenRecord = request.state.token  # set by the router's admin dependency
        return {"id": token.id, "name": token.name, "scopes": token.scopes}

    return router

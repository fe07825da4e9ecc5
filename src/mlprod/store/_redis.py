"""Connecting to Redis the one way every mlprod part does: bounded, no hidden retries.

The online feature store, the datamart cache and the Redis artifact store all connect
through `redis_client`: a bounded pool (a slow Redis must not make a server open a
connection per waiting request), timeouts on every socket operation, and no automatic
retries, so a caller's time budget is the budget. Passwords never reach a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlprod.errors import SpecError

if TYPE_CHECKING:
    import redis

SCHEMES = ("redis://", "rediss://", "unix://")


def check_redis_url(url: str, what: str) -> str:
    """`url` if it is a Redis URL; a SpecError naming the setting `what` otherwise."""
    if not isinstance(url, str) or not url.startswith(SCHEMES):
        raise SpecError(
            f"{what} must be a Redis URL such as redis://127.0.0.1:6379/0, got {shown_url(url)!r}"
        )
    return url


def shown_url(url: object) -> str:
    """`url` without its password, fit for messages."""
    text = str(url)
    if "@" in text and "://" in text:
        scheme, rest = text.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user + ':***' if user else '***'}@{host}"
    return text


def redis_client(
    url: str,
    *,
    what: str,
    timeout: float = 2.0,
    max_connections: int = 16,
    **options: Any,
) -> redis.Redis:
    """A client whose pool holds at most `max_connections` and waits at most `timeout`.

    Example::

        client = redis_client("redis://127.0.0.1:6379/0", what="MLPROD_CACHE", timeout=1)
    """
    import redis  # a store without Redis never loads the client library
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    check_redis_url(url, what)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **options,
    )
    return redis.Redis(connection_pool=pool)


def redis_problem(exc: BaseException, url: str) -> str:
    """What went wrong talking to the Redis at `url`, in one line and without secrets."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"Redis at {shown_url(url)} failed: {detail}"

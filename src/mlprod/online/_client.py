"""Lookups for the server: one round trip per request, inside a budget, never piling up.

A lookup that does not finish within `timeout` (20 ms by default) fails with
`OnlineStoreError`; the caller then follows the model's policy. The connection pool is
bounded, so a slow or blackholed Redis costs at most `max_connections` sockets, never
one per waiting request. After a failure the client stops asking for `cooldown`
seconds (requests fail at once, counted as ``skipped``), then lets one request probe;
the first success closes the circuit again, so it recovers on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry  # the asyncio client takes the asyncio policy
from redis.backoff import NoBackoff

from mlprod.errors import OnlineStoreError
from mlprod.features import FeaturePlan
from mlprod.online._scripts import LOOKUP, LOOKUP_SHA
from mlprod.online._store import (
    DEFAULT_PREFIX,
    Features,
    decode,
    lookup_call,
    lookup_program,
)
from mlprod.store import check_redis_url, redis_problem

OUTCOMES = ("hit", "missing", "nokey", "error", "timeout", "skipped")


class FeatureClient:
    """Async lookups against the online store, with a budget and a circuit breaker.

    Example::

        client = FeatureClient("redis://127.0.0.1:6379/0", timeout=0.02)
        found = await client.lookup(plan, [{"customer_id": "C1"}], at_ms=now_ms)
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 0.02,
        max_connections: int = 16,
        cooldown: float = 0.5,
    ) -> None:
        check_redis_url(url, "MLPROD_ONLINE")
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.cooldown = cooldown
        self.max_connections = max_connections
        pool = aredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self.redis = aredis.Redis(connection_pool=pool)
        self.counts: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        self._open_until = 0.0
        self._programs: dict[str, str] = {}

    async def lookup(
        self, plan: FeaturePlan, rows: Sequence[Mapping[str, Any]], *, at_ms: int
    ) -> list[Features | None]:
        """Each row's features; None where the entity is unknown or the row has no key.

        Raises `OnlineStoreError` when Redis fails or the budget runs out.
        """
        if time.monotonic() < self._open_until:
            self.counts["skipped"] += len(rows)
            raise OnlineStoreError(
                f"the online feature store at {self.url} failed moments ago; "
                f"asking again in under {self.cooldown:g}s"
            )
        program = self._programs.get(plan.namespace)
        if program is None:
            program = self._programs[plan.namespace] = lookup_program(plan)
        calls = [lookup_call(plan, self.prefix, row, at_ms, program) for row in rows]
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._run(calls)
        except TimeoutError:
            self._trip("timeout", len(rows))
            raise OnlineStoreError(
                f"the online feature store did not answer within {self.timeout * 1000:g} ms "
                "(MLPROD_ONLINE_TIMEOUT)"
            ) from None
        except redis.RedisError as exc:
            self._trip("error", len(rows))
            raise OnlineStoreError(
                f"the online feature store failed: {redis_problem(exc, self.url)}"
            ) from None
        self._open_until = 0.0
        found: list[Features | None] = []
        answers = iter(replies)
        for call in calls:
            values = None if call is None else decode(plan, next(answers), call.cutoff)
            outcome = "nokey" if call is None else "hit" if values is not None else "missing"
            self.counts[outcome] += 1
            found.append(values)
        return found

    async def _run(self, calls: Sequence[Any]) -> list[Any]:
        live = [call for call in calls if call is not None]
        if not live:
            return []
        for attempt in range(2):
            try:
                if len(live) == 1:
                    call = live[0]
                    reply = await self.redis.evalsha(
                        LOOKUP_SHA, len(call.keys), *call.keys, *call.args
                    )
                    return [reply]
                async with self.redis.pipeline(transaction=False) as pipe:
                    for call in live:
                        pipe.evalsha(LOOKUP_SHA, len(call.keys), *call.keys, *call.args)
                    return list(await pipe.execute())
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                await self.redis.script_load(LOOKUP)
        return []

    def _trip(self, outcome: str, rows: int) -> None:
        self.counts[outcome] += rows
        self._open_until = time.monotonic() + self.cooldown

    def stats(self) -> dict[str, float]:
        """Lookups per outcome, and whether the circuit is open, for /metrics."""
        return {
            **{f"lookups_{k}": float(v) for k, v in self.counts.items()},
            "circuit_open": float(time.monotonic() < self._open_until),
        }

    async def close(self) -> None:
        """Close every pooled connection (a pool passed in is not closed by the client)."""
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()

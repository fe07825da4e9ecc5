"""Lookups when Redis is down or blackholed: fail in budget, count, never pile up, recover.

Each test runs its own redis-server on a free port and stops (kill) or pauses (SIGSTOP:
the port accepts connections, nothing answers) that one; the shared Redis is never touched.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import pandas as pd
import pytest

from mlprod.errors import OnlineStoreError
from mlprod.online import FeatureClient, OnlineStore, ingest_events
from support import AGGREGATES, PrivateRedis, plan_for

pytestmark = pytest.mark.redis
PLAN = plan_for({**AGGREGATES, "delay": "0s", "joins": []})
NOW = int(pd.Timestamp("2026-03-05T12:00:00", tz="UTC").timestamp() * 1000)
ROW = [{"user": "u1"}]


def seed(server: PrivateRedis) -> None:
    store = OnlineStore.open(server.url, prefix="o")
    event = {"user": "u1", "at": "2026-03-05T11:59:00", "kind": "buy", "amount": 3.0}
    ingest_events(store, [PLAN], "clicks", [event], now_ms=NOW)
    store.close()


async def attempt(client: FeatureClient) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        found = await client.lookup(PLAN, ROW, at_ms=NOW)
    except OnlineStoreError:
        return "failed", time.perf_counter() - started
    return ("hit" if found[0] is not None else "missing"), time.perf_counter() - started


def established(port: int) -> int:
    """Open TCP connections to `port` on this machine (only the test's client connects)."""
    done = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return len([line for line in done.stdout.splitlines() if line.strip()])


def test_a_stopped_redis_fails_fast_is_counted_and_recovers(private_redis: PrivateRedis) -> None:
    seed(private_redis)

    async def scenario() -> dict[str, Any]:
        # a stopped Redis refuses at once: the budget only has to hold on a busy machine
        client = FeatureClient(private_redis.url, prefix="o", timeout=0.5, cooldown=0.3)
        first = await attempt(client)
        private_redis.stop()
        down = await attempt(client)
        skipped = await attempt(client)  # inside the cooldown: no attempt at all
        private_redis.start()  # empty: a restart lost the tiles and the scripts
        seed(private_redis)
        await asyncio.sleep(0.35)
        back = await attempt(client)
        stats = client.stats()
        await client.close()
        return {"first": first, "down": down, "skipped": skipped, "back": back, "stats": stats}

    got = asyncio.run(scenario())
    assert got["first"][0] == "hit"
    assert got["down"][0] == "failed" and got["down"][1] < 1.0
    assert got["skipped"][0] == "failed" and got["skipped"][1] < got["down"][1] + 0.01
    assert got["back"][0] == "hit"  # recovered by itself, scripts loaded again
    stats = got["stats"]
    assert stats["lookups_error"] + stats["lookups_timeout"] == 1
    assert stats["lookups_skipped"] == 1 and stats["lookups_hit"] == 2
    assert stats["circuit_open"] == 0.0


def test_a_blackholed_redis_times_out_within_the_budget_without_piling_up(
    private_redis: PrivateRedis,
) -> None:
    seed(private_redis)

    async def scenario() -> dict[str, Any]:
        client = FeatureClient(
            private_redis.url, prefix="o", timeout=0.02, cooldown=0.0, max_connections=4
        )
        await attempt(client)
        private_redis.pause()
        try:
            results = await asyncio.gather(*(attempt(client) for _ in range(64)))
            sockets = established(private_redis.port)
            more = [await attempt(client) for _ in range(20)]
            sockets = max(sockets, established(private_redis.port))
        finally:
            private_redis.resume()
        await asyncio.sleep(0.05)
        stats = client.stats()
        for _ in range(20):  # on its own again: a busy machine may need a few 20 ms tries
            back = await attempt(client)
            if back[0] == "hit":
                break
            await asyncio.sleep(0.1)
        await client.close()
        return {"results": results + more, "sockets": sockets, "back": back, "stats": stats}

    got = asyncio.run(scenario())
    outcomes = {outcome for outcome, _ in got["results"]}
    assert outcomes == {"failed"}
    # each gave up near the 20 ms budget (loose bound: a busy machine may add scheduling delay)
    assert max(seconds for _, seconds in got["results"]) < 1.0
    assert got["sockets"] <= 4  # the pool's bound, though 64 lookups waited at once
    assert got["back"][0] == "hit"
    stats = got["stats"]
    assert stats["lookups_timeout"] + stats["lookups_error"] == 84 and stats["lookups_timeout"] > 0

"""The online store against real Redis: parity with training, live events, watermarks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlprod.errors import OnlineStoreError
from mlprod.features import empty_values, point_in_time
from mlprod.online import OnlineStore, apply_due, ingest_events, materialize, same_value
from support import (
    AGGREGATES,
    REDIS_URL,
    T0,
    PrivateRedis,
    plan_for,
    random_events,
    random_plans,
)

pytestmark = pytest.mark.redis
START = pd.Timestamp(T0)


def ms(when: Any) -> int:
    return int(pd.Timestamp(when).tz_localize("UTC").timestamp() * 1000)


def utc(when: Any) -> datetime:
    return pd.Timestamp(when).tz_localize("UTC").to_pydatetime()


def mismatches(plan: Any, online: list[Any], offline: pd.DataFrame) -> list[Any]:
    """Where the store and the point-in-time engine disagree (unknown = training's empty)."""
    found = []
    for position, values in enumerate(online):
        values = values if values is not None else empty_values(plan)
        for name in plan.names():
            if not same_value(values[name], offline[name].iloc[position]):
                found.append((position, name, values[name], offline[name].iloc[position]))
    return found


def test_online_values_equal_point_in_time_values(
    redis_prefix: str, rng: np.random.Generator
) -> None:
    """Parity: random entities at random times, materialized incrementally up to each time."""
    plan = plan_for()
    events, table = random_events(rng), random_plans(rng)
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    offsets = np.sort(rng.integers(3600, 8 * 86400, size=10))
    compared = counted = 0
    for offset in offsets:
        at = (
            START + pd.Timedelta(seconds=int(offset)) + pd.Timedelta(milliseconds=int(offset) % 997)
        )
        materialize(store, plan, events={"clicks": events}, tables=[table], until=utc(at),
                    chunk_events=700)  # fmt: skip
        users = [str(u) for u in rng.integers(0, 45, size=25)]  # 40-44 never click
        rows = pd.DataFrame({"user": users, "t": [at] * len(users)})
        offline = point_in_time(rows, plan, time="t", events={"clicks": events}, tables=[table])
        online = store.lookup(plan, rows.to_dict("records"), at_ms=ms(at))
        assert mismatches(plan, online, offline) == []
        compared += len(users)
        counted += int(offline["n_1d"].sum())
        assert all(online[i] is None for i, u in enumerate(users) if int(u) >= 40)
    assert compared == 250 and counted > 100  # the windows held events: parity is not vacuous
    store.close()


def test_materialize_is_incremental_and_idempotent(
    redis_prefix: str, rng: np.random.Generator
) -> None:
    plan = plan_for({**AGGREGATES, "joins": []})
    events = random_events(rng, n=800)
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    until = utc(START + pd.Timedelta(days=4))
    first = materialize(store, plan, events={"clicks": events}, until=until)
    delay = pd.Timedelta(seconds=plan.delay)
    t = events["at"]
    assert first.events == int((t < until.replace(tzinfo=None) - delay).sum())
    again = materialize(store, plan, events={"clicks": events}, until=until)
    later = materialize(store, plan, events={"clicks": events}, until=until + timedelta(days=1))
    assert again.events == 0
    end = until.replace(tzinfo=None)
    assert later.events == int(
        ((t >= end - delay) & (t < end + pd.Timedelta(days=1) - delay)).sum()
    )
    assert store.meta(plan)["wm:clicks"] == ms(end) + 86_400_000 - plan.delay * 1000
    store.close()


def test_a_run_that_fails_half_way_resumes_without_counting_twice(
    private_redis: PrivateRedis, rng: np.random.Generator
) -> None:
    """Redis refuses writes (out of memory) mid-run; the next run picks up at the watermark."""
    plan = plan_for({**AGGREGATES, "joins": []})
    events = random_events(rng, n=4000, users=400)
    store = OnlineStore.open(private_redis.url, prefix="m")
    admin = private_redis.client()
    used = int(admin.info("memory")["used_memory"])
    # the whole run stores about 1.1 MB; while a chunk's pipeline arrives, Redis also
    # counts its query buffer (about 90 kB at 50 events, 340 kB at 200), so chunks stay
    # small enough that the first ones fit
    admin.config_set("maxmemory", used + 600_000)
    admin.config_set("maxmemory-policy", "noeviction")
    until = utc(START + pd.Timedelta(days=9))
    with pytest.raises(OnlineStoreError, match="failed"):
        materialize(store, plan, events={"clicks": events}, until=until, chunk_events=50)
    stopped_at = store.meta(plan)["wm:clicks"]
    assert ms(START) < stopped_at < ms(START + pd.Timedelta(days=9))  # some chunks committed
    admin.config_set("maxmemory", 0)
    rest = materialize(store, plan, events={"clicks": events}, until=until, chunk_events=200)
    assert rest.sources[0].since_ms == stopped_at
    at = START + pd.Timedelta(days=9)
    rows = pd.DataFrame({"user": [str(u) for u in range(400)], "t": at})
    offline = point_in_time(rows, plan, time="t", events={"clicks": events})
    online = store.lookup(plan, rows.to_dict("records"), at_ms=ms(at))
    assert mismatches(plan, online, offline) == []
    store.close()


def test_live_events_count_within_a_second(redis_prefix: str) -> None:
    plan = plan_for({**AGGREGATES, "delay": "0s", "joins": []})
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    now = datetime.now(UTC)
    event = {"user": "u1", "at": (now - timedelta(milliseconds=5)).isoformat(), "kind": "buy",
             "amount": 12.5}  # fmt: skip
    done = ingest_events(store, [plan], "clicks", [event], now_ms=int(now.timestamp() * 1000))
    assert (done.applied, done.pending, done.late) == (1, 0, 0)
    looked = store.lookup(plan, [{"user": "u1"}], at_ms=int(now.timestamp() * 1000) + 1)[0]
    assert looked is not None
    # applied synchronously: the very next lookup (a millisecond later) counts it
    assert looked["n_1h"] == 1 and looked["spend_6h"] == 12.5 and looked["last_1h"] == "buy"
    store.close()


def test_events_within_the_delay_wait_and_count_once(redis_prefix: str) -> None:
    plan = plan_for({**AGGREGATES, "delay": "2s", "joins": []})
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    now = ms(START + pd.Timedelta(days=1))
    event = {"user": "u2", "at": (START + pd.Timedelta(days=1, milliseconds=-500)).isoformat(),
             "kind": "view", "amount": None}  # fmt: skip
    done = ingest_events(store, [plan], "clicks", [event], now_ms=now)
    assert (done.applied, done.pending) == (0, 1)
    assert store.lookup(plan, [{"user": "u2"}], at_ms=now)[0] is None  # not yet counted
    assert apply_due(store, [plan], now_ms=now + 1000) == 0  # still inside the delay
    assert apply_due(store, [plan], now_ms=now + 1600) == 1
    assert apply_due(store, [plan], now_ms=now + 5000) == 0  # applied once
    looked = store.lookup(plan, [{"user": "u2"}], at_ms=now + 1600)[0]
    assert looked is not None and looked["n_1h"] == 1
    store.close()


def test_late_events_are_refused_and_materialize_stops_where_live_began(
    redis_prefix: str, rng: np.random.Generator
) -> None:
    plan = plan_for({**AGGREGATES, "delay": "0s", "joins": []})
    events = random_events(rng, n=500)
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    materialize(store, plan, events={"clicks": events}, until=utc(START + pd.Timedelta(days=3)))
    old = {"user": "u3", "at": (START + pd.Timedelta(days=2)).isoformat(), "kind": "buy",
           "amount": 1.0}  # fmt: skip
    live_at = START + pd.Timedelta(days=5)
    new = {**old, "at": live_at.isoformat()}
    done = ingest_events(store, [plan], "clicks", [old, new], now_ms=ms(live_at) + 1)
    assert (done.applied, done.late) == (1, 1)
    report = materialize(
        store, plan, events={"clicks": events}, until=utc(START + pd.Timedelta(days=8))
    )
    assert report.sources[0].until_ms == ms(live_at)  # live events own what follows
    t = events["at"]
    in_between = (t >= START + pd.Timedelta(days=3)) & (t < live_at)
    assert report.events == int(in_between.sum())
    store.close()


def test_unknown_source_names_what_is_read(redis_prefix: str) -> None:
    from mlprod.errors import NotFoundError

    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    with pytest.raises(NotFoundError, match=r"no served model reads events 'clickz'.*clicks"):
        ingest_events(store, [plan_for()], "clickz", [{"user": "a"}], now_ms=0)
    store.close()


def test_evicted_entities_are_missing_never_zero(rng: np.random.Generator) -> None:
    """With maxmemory and volatile-lru, Redis evicts entity tiles; lookups say unknown."""
    server = PrivateRedis("--maxmemory", "3mb", "--maxmemory-policy", "volatile-lru")
    server.start()
    try:
        plan = plan_for({**AGGREGATES, "joins": []})
        events = random_events(rng, n=30_000, users=3000)
        store = OnlineStore.open(server.url, prefix="e")
        at = START + pd.Timedelta(days=8)
        # small transactions: Redis evicts between them, never inside one
        materialize(store, plan, events={"clicks": events}, until=utc(at), chunk_events=300)
        users = [str(u) for u in range(3000)]
        rows = pd.DataFrame({"user": users, "t": at})
        online = store.lookup(plan, rows.to_dict("records"), at_ms=ms(at))
        offline = point_in_time(rows, plan, time="t", events={"clicks": events})
        evicted = [i for i, v in enumerate(online) if v is None]
        assert int(server.client().info("stats")["evicted_keys"]) > 0
        assert evicted, "nothing was evicted: the test proves nothing"
        # the evicted had events in their windows: a zero would have been a wrong answer
        assert sum(int(offline["n_1d"].iloc[i]) for i in evicted) > 0
        kept = [i for i, v in enumerate(online) if v is not None]
        assert mismatches(plan, [online[i] for i in kept], offline.iloc[kept]) == []
        assert "wm:clicks" in store.meta(plan)  # the watermark has no TTL: never evicted
        store.close()
    finally:
        server.stop()


def test_a_window_of_thousands_of_tiles_reads_in_parts(
    redis_prefix: str, rng: np.random.Generator
) -> None:
    """A 1d window with a 10s hop reads 8,641 tiles: more than one HMGET may carry."""
    raw = {**AGGREGATES, "joins": [], "define": [
        {"name": "n", "events": "clicks", "function": "count", "windows": ["1d"], "hop": "10s"},
        {"name": "top", "events": "clicks", "function": "max", "column": "amount",
         "windows": ["1d"], "hop": "10s"},
    ]}  # fmt: skip
    plan = plan_for(raw)
    assert plan.aggregates[0].tiles == 8641
    events = random_events(rng, n=400, users=5)
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    at = START + pd.Timedelta(days=8, hours=1)
    materialize(store, plan, events={"clicks": events}, until=utc(at))
    rows = pd.DataFrame({"user": [str(u) for u in range(5)], "t": at})
    offline = point_in_time(rows, plan, time="t", events={"clicks": events})
    online = store.lookup(plan, rows.to_dict("records"), at_ms=ms(at))
    assert mismatches(plan, online, offline) == []
    assert int(offline["n_1d"].sum()) > 20
    store.close()


def test_kept_lookup_values_follow_every_write_and_every_hop(redis_prefix: str) -> None:
    """LOOKUP keeps its values per newest tile; a merge or a new hop must never see old ones."""
    plan = plan_for({**AGGREGATES, "delay": "0s", "joins": []})
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    at = START + pd.Timedelta(days=2)
    sent: list[dict[str, Any]] = []

    def send(minutes_before: int, amount: float) -> None:
        event = {"user": "u5", "at": (at - pd.Timedelta(minutes=minutes_before)).isoformat(),
                 "kind": "buy", "amount": amount}  # fmt: skip
        sent.append(event)
        ingest_events(store, [plan], "clicks", [event], now_ms=ms(at))

    def check(when: pd.Timestamp) -> dict[str, Any]:
        found = store.lookup(plan, [{"user": "u5"}], at_ms=ms(when))[0]
        offline = point_in_time(pd.DataFrame({"user": ["u5"], "t": [when]}), plan, time="t",
                                events={"clicks": pd.DataFrame(sent)})  # fmt: skip
        assert found is not None and mismatches(plan, [found], offline) == []
        return found

    send(30, 7.0)
    assert check(at)["n_1h"] == 1
    assert check(at)["n_1h"] == 1  # read back from the kept values
    assert store.client.hexists(store.key(plan, "e:u5"), "c")
    send(20, 9.0)  # a write drops them
    assert not store.client.hexists(store.key(plan, "e:u5"), "c")
    assert check(at)["hi_7d"] == 9.0
    assert check(at + pd.Timedelta(hours=3))["n_1h"] == 0  # a later hop: computed afresh
    assert check(at)["n_1h"] == 2  # and back again
    assert store.lookup(plan, [{"user": "nobody"}], at_ms=ms(at)) == [None]
    assert not store.client.exists(store.key(plan, "e:nobody"))  # nothing written for it
    store.close()

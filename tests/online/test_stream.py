"""Live events from Redis streams: within a second, each counted once, bad ones set aside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import redis
import yaml

from mlprod.errors import SpecError
from mlprod.features import compile_plan, empty_values, point_in_time
from mlprod.online import OnlineStore, StreamReader, entry_event, same_value
from mlprod.spec import AggregatesSpec
from support import AGGREGATES, REDIS_URL, T0, free_port, random_events

START = pd.Timestamp(T0)


def streamed(prefix: str, delay: str = "90s", **stream: Any) -> dict[str, Any]:
    """The test aggregates (no join) with the clicks arriving on a stream under `prefix`."""
    clicks = {**AGGREGATES["events"]["clicks"], "stream": {"key": f"{prefix}:clicks", **stream}}
    return {**AGGREGATES, "delay": delay, "joins": [], "events": {"clicks": clicks}}


def plan_of(raw: dict[str, Any]) -> Any:
    return compile_plan(AggregatesSpec.model_validate(raw), key="user")


def present(event: pd.Series) -> dict[str, Any]:
    """An event's values as JSON takes them; a missing value is left out."""
    values = {}
    for key, value in dict(event).items():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        values[key] = value.isoformat() if isinstance(value, pd.Timestamp) else value
    return values


def entry(event: pd.Series) -> dict[str, str]:
    """An event as stream fields, one per column."""
    return {key: str(value) for key, value in present(event).items()}


def xadd_all(client: redis.Redis, key: str, events: pd.DataFrame) -> None:
    with client.pipeline(transaction=False) as pipe:
        for number, (_, row) in enumerate(events.iterrows()):
            if number % 2:  # both ways an entry may carry its event
                pipe.xadd(key, entry(row))  # type: ignore[arg-type]
            else:
                pipe.xadd(key, {"event": orjson.dumps(present(row)).decode()})
        pipe.execute()


def group_info(client: redis.Redis, key: str, group: str = "mlprod") -> dict[str, Any]:
    found = [g for g in client.xinfo_groups(key) if g["name"] in (group, group.encode())]
    return found[0] if found else {}


def parity(plan: Any, store: OnlineStore, events: pd.DataFrame, users: int = 40) -> list[Any]:
    """Where the store and the point-in-time engine disagree, at times after every event."""
    last = events["at"].max()
    found = []
    for offset in ("2min", "40min", "5h"):
        at = last + pd.Timedelta(offset)
        rows = pd.DataFrame({"user": [str(u) for u in range(users)], "t": at})
        offline = point_in_time(rows, plan, time="t", events={"clicks": events})
        at_ms = int(at.tz_localize("UTC").timestamp() * 1000)
        online = store.lookup(plan, rows.to_dict("records"), at_ms=at_ms)
        for position, values in enumerate(online):
            values = values if values is not None else empty_values(plan)
            for name in plan.names():
                if not same_value(values[name], offline[name].iloc[position]):
                    found.append(
                        (offset, position, name, values[name], offline[name].iloc[position])
                    )
    return found


def until_done(reader: StreamReader, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while reader.step() or reader.refresh_lag().lag_entries:
        assert time.monotonic() < deadline, f"the reader is stuck: {reader.stats}"


# --- the spec


def test_a_stream_is_declared_per_source_and_checked() -> None:
    raw = streamed("p")
    assert plan_of(raw).spec.events["clicks"].stream.dead_key == "p:clicks:dead"
    short = {**raw, "events": {"clicks": {**raw["events"]["clicks"], "stream": "s"}}}
    assert plan_of(short).spec.events["clicks"].stream.key == "s"
    # where events arrive is not what the features mean: the namespace stays the same
    assert plan_of(raw).namespace == plan_of({**AGGREGATES, "delay": "90s", "joins": []}).namespace
    with pytest.raises(ValueError, match="dead_letter must differ"):
        plan_of(streamed("p", dead_letter="p:clicks"))
    clicks = raw["events"]["clicks"]
    twice = {**raw, "events": {"clicks": clicks, "more": clicks}}
    with pytest.raises(ValueError, match=r"share the stream\(s\) \['p:clicks'\]"):
        plan_of(twice)
    with pytest.raises(SpecError, match="declares a stream"):
        StreamReader(None, plan_of({**AGGREGATES, "joins": []}), consumer="c")  # type: ignore[arg-type]


def test_an_entry_carries_its_event_in_one_json_field_or_one_field_per_column() -> None:
    assert entry_event({b"event": b'{"user": "7", "amount": 5}'}) == {"user": "7", "amount": 5}
    fields = {b"user": b"007", b"amount": b"12.5", b"at": b"2026-03-01T00:00:00Z"}
    assert entry_event(fields) == {"user": "007", "amount": 12.5, "at": "2026-03-01T00:00:00Z"}


# --- against Redis


@pytest.mark.redis
def test_streamed_events_count_within_a_second(redis_prefix: str) -> None:
    plan = plan_of(streamed(redis_prefix, delay="0s"))
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    reader = StreamReader(store, plan, consumer="c1")
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(stop,), daemon=True)
    thread.start()
    seconds = []
    try:
        for number in range(1, 6):
            sent = time.monotonic()
            at = datetime.now(UTC) - timedelta(milliseconds=5)
            fields = {"user": "u1", "at": at.isoformat(), "kind": "buy", "amount": "7.5"}
            store.client.xadd(f"{redis_prefix}:clicks", fields)  # type: ignore[arg-type]
            while True:
                now_ms = int(time.time() * 1000)
                found = store.lookup(plan, [{"user": "u1"}], at_ms=now_ms)[0]
                if found is not None and found["n_1h"] == number:
                    break
                assert time.monotonic() - sent < 30, f"event {number} never counted"
                time.sleep(0.01)
            seconds.append(time.monotonic() - sent)
            assert found["spend_6h"] == 7.5 * number and found["last_1h"] == "buy"
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert sorted(seconds)[2] < 1.0, seconds  # the median of five: within a second
    assert reader.stats.applied == 5 and reader.stats.dead == 0
    store.close()


@pytest.mark.redis
@pytest.mark.parametrize("restart", ["same consumer", "another consumer claims"])
def test_a_reader_that_dies_between_apply_and_ack_counts_nothing_twice(
    redis_prefix: str, rng: np.random.Generator, restart: str
) -> None:
    plan = plan_of(streamed(redis_prefix))
    events = random_events(rng, n=600)
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    key = f"{redis_prefix}:clicks"
    xadd_all(store.client, key, events)
    first = StreamReader(store, plan, consumer="a", batch=200)
    first.start()
    given = store.client.xreadgroup("mlprod", "a", {key: ">"}, count=200)[0][1]
    entries = [(i.decode(), fields) for i, fields in given]
    first.apply("clicks", entries, int(time.time() * 1000))  # applied, then killed: no ack
    assert first.refresh_lag().lag_entries == 600  # nothing acknowledged yet
    name, idle = ("a", 30_000) if restart == "same consumer" else ("b", 0)
    second = StreamReader(store, plan, consumer=name, batch=150, claim_idle_ms=idle)
    until_done(second)
    assert second.stats.duplicates == 200  # redelivered, recognised, only acknowledged
    assert first.stats.applied + second.stats.applied == 600
    assert group_info(store.client, key)["pending"] == 0
    assert store.client.zcard(store.key(plan, f"seen:{key}")) == 0  # forgotten once acked
    assert parity(plan, store, events) == []
    store.close()


@pytest.mark.redis
def test_a_malformed_entry_goes_to_the_dead_letter_stream_and_reading_goes_on(
    redis_prefix: str,
) -> None:
    plan = plan_of(streamed(redis_prefix))
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    key = f"{redis_prefix}:clicks"
    good = {"user": "u9", "at": "2026-03-02T10:00:00", "kind": "view", "amount": "4"}
    store.client.xadd(key, good)  # type: ignore[arg-type]
    bad = [
        {"user": "u9", "kind": "view"},
        {"event": "{not json"},
        {**good, "amount": "plenty"},
        {**good, "user": ""},
        {**good, "at": "yesterday-ish"},
    ]
    for fields in bad:
        store.client.xadd(key, fields)  # type: ignore[arg-type]
    store.client.xadd(key, {**good, "at": "2026-03-02T10:30:00"})  # type: ignore[arg-type]
    reader = StreamReader(store, plan, consumer="c", batch=100)
    reader.start()
    until_done(reader)
    assert (reader.stats.applied, reader.stats.dead, reader.stats.lag_entries) == (2, 5, 0)
    letters = store.client.xrange(f"{key}:dead")
    reasons = [fields[b"reason"].decode() for _, fields in letters]
    assert "no time: the event needs field 'at'" in reasons[0]
    assert "not JSON" in reasons[1]
    assert "'plenty', not a number" in reasons[2]
    assert "no key: the event needs field 'user'" in reasons[3]
    assert "not dates" in reasons[4]
    assert orjson.loads(letters[2][1][b"entry"])["amount"] == "plenty"
    assert letters[2][1][b"stream"].decode() == key
    at_ms = int(pd.Timestamp("2026-03-02T11:00:00Z").timestamp() * 1000)
    found = store.lookup(plan, [{"user": "u9"}], at_ms=at_ms)[0]
    assert found is not None and found["n_1h"] == 2 and found["hi_7d"] == 4.0
    store.close()


@pytest.mark.redis
def test_lag_counts_entries_not_yet_acknowledged(redis_prefix: str) -> None:
    plan = plan_of(streamed(redis_prefix))
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    reader = StreamReader(store, plan, consumer="c", batch=4)
    reader.start()
    for minute in range(7):
        store.client.xadd(f"{redis_prefix}:clicks",
                          {"user": "u", "at": f"2026-03-02T10:{minute:02d}:00"})  # fmt: skip
    time.sleep(0.05)
    lag = reader.refresh_lag()
    assert lag.lag_entries == 7 and lag.lag_seconds >= 0.05
    reader.step()
    assert reader.refresh_lag().lag_entries == 3
    until_done(reader)
    assert (reader.stats.lag_entries, reader.stats.lag_seconds) == (0, 0.0)
    store.close()


# --- the command: kill -9, restart, SIGTERM


def write_stream_project(root: Path, prefix: str) -> Path:
    raw = streamed(prefix)
    raw["events"]["clicks"]["source"] = "clicks.csv"
    pd.DataFrame({"user": ["1"], "at": [T0], "kind": ["buy"], "amount": [1.0]}).to_csv(
        root / "clicks.csv", index=False
    )
    pd.DataFrame({"user": ["1", "2"], "t": [T0, T0], "x": [1, 2], "y": [0, 1]}).to_csv(
        root / "rows.csv", index=False
    )
    spec = {
        "name": "clicks",
        "data": {"source": "rows.csv", "target": "y", "time": "t", "entity": "user"},
        "features": {"numeric": ["x"], "aggregates": raw},
    }
    (root / "mlprod.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return root


def start_reader(root: Path, prefix: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MLPROD_ONLINE": REDIS_URL, "MLPROD_REDIS_PREFIX": prefix,
           "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(sys.path)}  # fmt: skip
    command = [sys.executable, "-m", "mlprod", "features", "stream", "--consumer", "c1", *extra]
    return subprocess.Popen(command, cwd=root, env=env, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Any, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.redis
@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(
    redis_prefix: str, rng: np.random.Generator, tmp_path: Path
) -> None:
    root = write_stream_project(tmp_path, redis_prefix)
    plan = plan_of(streamed(redis_prefix))
    events = random_events(rng, n=3000)
    store = OnlineStore.open(REDIS_URL, prefix=redis_prefix)
    key = f"{redis_prefix}:clicks"
    xadd_all(store.client, key, events)
    reader = start_reader(root, redis_prefix, "--batch", "20")

    def acked() -> int:
        info = group_info(store.client, key)
        return int(info.get("entries-read") or 0) - int(info.get("pending", 0))

    try:
        wait_for(lambda: acked() >= 600, "the first 600 entries")
    finally:
        reader.kill()  # SIGKILL: no chance to finish the batch in hand
        reader.communicate(timeout=30)
    assert reader.returncode == -signal.SIGKILL
    assert acked() < 3000  # killed mid-way
    port = free_port()
    reader = start_reader(root, redis_prefix, "--batch", "20", "--metrics-port", str(port))
    try:
        wait_for(lambda: acked() == 3000, "every entry")

        def scraped() -> dict[str, float]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
                lines = answer.read().decode().splitlines()
            pairs = [line.split() for line in lines if line.startswith("mlprod_stream_")]
            return {name: float(value) for name, value in pairs}

        wait_for(lambda: scraped().get("mlprod_stream_lag_entries") == 0.0, "a lag of 0")
        metrics = scraped()
    finally:
        reader.send_signal(signal.SIGTERM)
        _, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert "stopped: applied" in err
    assert metrics["mlprod_stream_dead"] == 0
    assert 0 < metrics["mlprod_stream_applied"] <= 3000
    assert parity(plan, store, events) == []
    store.close()


@pytest.mark.redis
def test_a_taken_metrics_port_is_a_clear_error(redis_prefix: str, tmp_path: Path) -> None:
    import socket

    from mlprod.pipelines import stream_features
    from mlprod.settings import Settings

    write_stream_project(tmp_path, redis_prefix)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(online=REDIS_URL, redis_prefix=redis_prefix)
        spec = tmp_path / "mlprod.yaml"
        with pytest.raises(SpecError, match=f"--metrics-port {port}: cannot listen"):
            stream_features(spec, stop=threading.Event(), metrics_port=port, settings=settings)

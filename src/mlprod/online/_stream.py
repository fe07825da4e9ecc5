"""Live events read from Redis streams: a consumer group per source, each entry counted once.

A source declares ``stream: {key, group}``; `StreamReader` reads it as one consumer of
the group and merges the entries the way ``POST /v1/events`` does (late ones refused,
ones inside the delay waiting their turn).

Delivery is at least once, counting is exactly once: a batch's merges commit in one
transaction together with its entry ids (a ``seen`` set under the plan's namespace);
the entries are acknowledged, and their ids dropped from the set, in a second one. A
reader killed between the two finds those entries again (its own pending list on
restart, or another reader claims them once idle for `claim_idle_ms`), sees their ids
and only acknowledges them. An entry that cannot be an event (no key, no time, a text
where a number belongs) goes to the dead-letter stream with the reason, in the same
transaction, and the reader carries on.

An entry is either one field ``event`` holding a JSON object, or one field per column;
a column's value is read as JSON when it parses (``12.5``, ``true``) and as text
otherwise (``2026-06-01T12:00:00Z``, ``C1``).

Example::

    reader = StreamReader(online, plan, consumer="host-1")
    reader.start()
    while not stop.is_set():
        reader.step()
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis

from mlprod.errors import DataError, OnlineStoreError, SpecError
from mlprod.features import FeaturePlan
from mlprod.online._live import Prepared, apply_due, prepare_events
from mlprod.online._store import OnlineStore, key_text

DEAD_MAX = 100_000  # dead letters kept per stream (approximately), the oldest dropped
Entry = tuple[str, dict[str, Any] | None]  # (entry id, the raw fields or None if trimmed)


@dataclass
class StreamStats:
    """What a reader has done since it started, and how far behind its streams are."""

    read: int = 0
    applied: int = 0
    waiting: int = 0
    late: int = 0
    duplicates: int = 0
    dead: int = 0
    lag_entries: int = 0
    lag_seconds: float = 0.0

    def document(self) -> dict[str, float]:
        return {key: float(value) for key, value in asdict(self).items()}


class BadEntryError(ValueError):
    """An entry that cannot be an event; the message is the dead letter's reason."""


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def entry_event(fields: Mapping[Any, Any]) -> dict[str, Any]:
    """The event an entry carries (see the module docstring); `BadEntryError` if none."""
    texts = {_text(k): _text(v) for k, v in fields.items()}
    if set(texts) == {"event"}:
        try:
            event = orjson.loads(texts["event"])
        except orjson.JSONDecodeError as exc:
            raise BadEntryError(f"field 'event' is not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise BadEntryError(f"field 'event' holds a {type(event).__name__}, not a JSON object")
        return event
    return {key: _value(value) for key, value in texts.items()}


def _value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


class StreamReader:
    """One consumer of every stream the plan's event sources declare.

    `consumer` names this reader in its groups; a reader restarted under the same name
    first finishes what it had been given. `batch` entries are read (and committed) at a
    time; a read waits up to `block_ms` for new entries.
    """

    def __init__(
        self,
        online: OnlineStore,
        plan: FeaturePlan,
        *,
        consumer: str,
        batch: int = 500,
        block_ms: int = 100,
        claim_idle_ms: int = 30_000,
    ) -> None:
        used = {feature.events for feature in plan.aggregates}
        self.sources = {
            name: source.stream
            for name, source in plan.spec.events.items()
            if source.stream is not None and name in used
        }
        if not self.sources:
            raise SpecError(
                "no event source of features.aggregates declares a stream; add e.g. "
                "`stream: {key: events:activity}` to one of aggregates.events"
            )
        self.online = online
        self.plan = plan
        self.consumer = consumer
        self.batch = batch
        self.block_ms = max(1, block_ms)
        self.claim_idle_ms = claim_idle_ms
        self.stats = StreamStats()
        self.problem = ""  # the last failure, while it lasts
        self._own_pending = set(self.sources)
        self._next_claim = 0.0
        self._started = False

    # --- the loop

    def start(self) -> None:
        """Create the groups that do not exist yet (reading from the stream's start)."""
        for stream in self.sources.values():
            try:
                self.online.client.xgroup_create(stream.key, stream.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise self.online._failure(exc) from exc
            except redis.RedisError as exc:
                raise self.online._failure(exc) from exc
        self._started = True

    def step(self, now_ms: int | None = None) -> int:
        """Read, apply and acknowledge one batch per source; returns the entries handled."""
        if not self._started:
            self.start()
        handled = 0
        for source in self.sources:
            entries = self._read(source)
            if entries:
                now = now_ms if now_ms is not None else int(time.time() * 1000)
                self.handle(source, entries, now)
                handled += len(entries)
        if self.plan.delay > 0:
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            self.stats.applied += apply_due(self.online, [self.plan], now_ms=now)
        return handled

    def run(
        self,
        stop: threading.Event,
        report: Callable[[StreamStats], None] | None = None,
        every: float = 1.0,
    ) -> StreamStats:
        """Step until `stop` is set; refresh the lag and call `report` about every `every` s.

        A failing Redis is reported and retried every `every` seconds; the reader then
        starts over from its own pending entries, so nothing it was given is skipped.
        """
        self.start()
        next_report = 0.0
        while not stop.is_set():
            try:
                self.step()
            except OnlineStoreError as exc:
                self.problem = str(exc)
                self._own_pending = set(self.sources)
                if report is not None:
                    report(self.stats)
                stop.wait(every)
                continue
            self.problem = ""
            if time.monotonic() >= next_report:
                with contextlib.suppress(OnlineStoreError):
                    self.refresh_lag()
                if report is not None:
                    report(self.stats)
                next_report = time.monotonic() + every
        return self.stats

    # --- reading

    def _read(self, source: str) -> list[Entry]:
        stream = self.sources[source]
        client = self.online.client
        try:
            if source in self._own_pending:  # what this consumer was given before a restart
                replies = client.xreadgroup(
                    stream.group, self.consumer, {stream.key: "0"}, count=self.batch
                )
                entries = _entries(replies)
                if entries:
                    return entries
                self._own_pending.discard(source)
            if time.monotonic() >= self._next_claim:  # what a dead consumer left behind
                self._next_claim = time.monotonic() + self.claim_idle_ms / 2000
                claimed = client.xautoclaim(
                    stream.key, stream.group, self.consumer, self.claim_idle_ms, count=self.batch
                )
                entries = [(_text(i), f) for i, f in claimed[1]]
                entries += [(_text(i), None) for i in (claimed[2] if len(claimed) > 2 else [])]
                if entries:
                    return entries
            replies = client.xreadgroup(
                stream.group,
                self.consumer,
                {stream.key: ">"},
                count=self.batch,
                block=self.block_ms // len(self.sources) or 1,
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise self.online._failure(exc) from exc
            self._started = False  # the stream was deleted: create it and the group again
            return []
        except redis.RedisError as exc:
            raise self.online._failure(exc) from exc
        return _entries(replies)

    # --- applying

    def handle(self, source: str, entries: Sequence[Entry], now_ms: int) -> None:
        """Apply `entries` of `source`, then acknowledge them."""
        self.apply(source, entries, now_ms)
        self.ack(source, [entry_id for entry_id, _ in entries])

    def apply(self, source: str, entries: Sequence[Entry], now_ms: int) -> None:
        """Merge the entries not applied before, with their ids, in one transaction.

        Bad entries go to the dead-letter stream in the same transaction. Until `ack`,
        a second call with the same entries only counts them as duplicates.
        """
        stream = self.sources[source]
        seen_key = self.online.key(self.plan, f"seen:{stream.key}")
        self.online.load_scripts()
        ids = [entry_id for entry_id, _ in entries]
        for _ in range(20):
            try:
                with self.online.client.pipeline(transaction=True) as pipe:
                    pipe.watch(seen_key)  # type: ignore[no-untyped-call]  # untyped in redis-py
                    scores = pipe.zmscore(seen_key, ids)
                    fresh = [e for e, score in zip(entries, scores, strict=True) if score is None]
                    prepared, dead = self._prepare(source, fresh, now_ms)
                    pipe.multi()
                    if prepared is not None:
                        prepared.queue(self.online, pipe, self.plan)
                    for entry_id, fields, reason in dead:
                        letter = _dead_letter(stream.key, entry_id, fields, reason)
                        pipe.xadd(stream.dead_key, letter, maxlen=DEAD_MAX, approximate=True)  # type: ignore[arg-type]
                    if fresh:
                        pipe.zadd(seen_key, {entry_id: now_ms for entry_id, _ in fresh})
                    pipe.execute()
            except redis.WatchError:
                continue
            except redis.RedisError as exc:
                raise self.online._failure(exc) from exc
            self._count(len(entries), len(entries) - len(fresh), prepared, len(dead))
            return
        raise self.online._failure(redis.WatchError("the seen set kept changing"))

    def _count(self, read: int, duplicates: int, prepared: Prepared | None, dead: int) -> None:
        self.stats.read += read
        self.stats.duplicates += duplicates
        self.stats.dead += dead
        if prepared is not None:
            self.stats.applied += prepared.applied
            self.stats.waiting += len(prepared.pending)
            self.stats.late += prepared.late

    def _prepare(
        self, source: str, entries: Sequence[Entry], now_ms: int
    ) -> tuple[Prepared | None, list[tuple[str, dict[str, Any] | None, str]]]:
        """The merges of the good entries, and the bad ones with their reasons."""
        good: list[tuple[str, dict[str, Any]]] = []
        dead: list[tuple[str, dict[str, Any] | None, str]] = []
        for entry_id, fields in entries:
            if fields is None:
                continue  # trimmed from the stream before it was read: nothing to apply
            try:
                good.append((entry_id, self._event(source, fields)))
            except BadEntryError as exc:
                dead.append((entry_id, fields, str(exc)))
        if not good:
            return None, dead
        try:
            return self._prepared(source, good, now_ms), dead
        except DataError:
            pass  # one entry spoils the batch: find which, one at a time
        kept = []
        for entry_id, event in good:
            try:
                self._prepared(source, [(entry_id, event)], now_ms)
                kept.append((entry_id, event))
            except DataError as exc:
                dead.append((entry_id, next(f for i, f in entries if i == entry_id), exc.message))
        dead.sort(key=lambda item: tuple(int(part) for part in item[0].split("-")))
        return (self._prepared(source, kept, now_ms) if kept else None), dead

    def _prepared(
        self, source: str, good: Sequence[tuple[str, dict[str, Any]]], now_ms: int
    ) -> Prepared:
        ids = [entry_id for entry_id, _ in good]
        events = [event for _, event in good]
        return prepare_events(self.online, self.plan, source, events, now_ms, ids)

    def _event(self, source: str, fields: Mapping[Any, Any]) -> dict[str, Any]:
        event = entry_event(fields)
        entity = self.plan.event_entity(source)
        if key_text(event.get(entity)) in (None, ""):
            raise BadEntryError(f"no key: the event needs field {entity!r}")
        column = self.plan.spec.events[source].time
        if event.get(column) in (None, ""):
            raise BadEntryError(f"no time: the event needs field {column!r} (an ISO time)")
        if not isinstance(event[column], str):
            raise BadEntryError(f"field {column!r} holds {event[column]!r}, not an ISO time")
        return event

    def ack(self, source: str, ids: Sequence[str]) -> None:
        """Acknowledge `ids` and forget them, in one transaction."""
        if not ids:
            return
        stream = self.sources[source]
        try:
            with self.online.client.pipeline(transaction=True) as pipe:
                pipe.xack(stream.key, stream.group, *ids)
                pipe.zrem(self.online.key(self.plan, f"seen:{stream.key}"), *ids)
                pipe.execute()
        except redis.RedisError as exc:
            raise self.online._failure(exc) from exc

    # --- lag

    def refresh_lag(self) -> StreamStats:
        """Entries not yet acknowledged, and the age of the oldest, over every stream."""
        entries, oldest = 0, None
        try:
            for stream in self.sources.values():
                count, first = _group_lag(self.online.client, stream.key, stream.group)
                entries += count
                if first is not None:
                    oldest = first if oldest is None else min(oldest, first)
        except redis.RedisError as exc:
            raise self.online._failure(exc) from exc
        self.stats.lag_entries = entries
        now = time.time() * 1000
        self.stats.lag_seconds = max(0.0, (now - oldest) / 1000) if oldest is not None else 0.0
        return self.stats


def _group_lag(client: redis.Redis, key: str, group: str) -> tuple[int, int | None]:
    """(entries delivered but unacknowledged or not yet delivered, the oldest one's ms)."""
    found = [g for g in client.xinfo_groups(key) if _text(g["name"]) == group]
    if not found:
        return 0, None
    info = found[0]
    pending = int(info["pending"])
    last = _text(info["last-delivered-id"])
    newer = client.xrange(key, min=f"({last}", max="+", count=1)
    lag = info.get("lag")
    if lag is None and newer:  # Redis cannot tell after deletions: count what is newer
        lag = len(client.xrange(key, min=f"({last}", max="+", count=100_000) or [])
    oldest = None
    if pending:
        oldest = _entry_ms(_text(client.xpending(key, group)["min"]))
    elif newer:
        oldest = _entry_ms(_text(newer[0][0]))
    return pending + int(lag or 0), oldest


def _entries(replies: Any) -> list[Entry]:
    found: list[Entry] = []
    for _, items in replies or []:
        found += [(_text(entry_id), fields) for entry_id, fields in items]
    return found


def _dead_letter(
    key: str, entry_id: str, fields: Mapping[Any, Any] | None, reason: str
) -> dict[str, str]:
    raw = {_text(k): _text(v) for k, v in (fields or {}).items()}
    return {"stream": key, "id": entry_id, "reason": reason, "entry": orjson.dumps(raw).decode()}


def stream_keys(plan: FeaturePlan) -> dict[str, str]:
    """Each streamed source's stream key (for messages and tests)."""
    return {name: e.stream.key for name, e in plan.spec.events.items() if e.stream is not None}

"""Live events: ``POST /v1/events`` merges them into the online windows within a second.

An event older than its source's watermark is refused as late (``materialize`` owns that
span) and counted; one within the plan's delay waits in a pending set until it is old
enough to count (training would not have counted it yet either) and `apply_due` merges
it then, atomically: a pending event is applied once even with several servers moving
them. The first live event's time is recorded, so ``materialize`` stops there.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
import redis

from mlprod.errors import DataError, NotFoundError
from mlprod.features import FeaturePlan, epoch_ms
from mlprod.online._store import OnlineStore
from mlprod.online._tiles import Merges, join_merges, tile_merges

DUE_BATCH = 1000


@dataclass
class Ingested:
    """What happened to a batch of live events (counted once, across plans)."""

    source: str
    applied: int = 0
    pending: int = 0
    late: int = 0
    namespaces: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "applied": self.applied,
            "pending": self.pending,
            "late": self.late,
            "namespaces": self.namespaces,
        }


def source_time(plan: FeaturePlan, source: str) -> str | None:
    """The time column of `source` in `plan` (an event source or a join), if it uses it."""
    if source in plan.spec.events and any(f.events == source for f in plan.aggregates):
        return plan.spec.events[source].time
    for join in plan.joins:
        if join.name == source:
            return join.time
    return None


def _complete(plan: FeaturePlan, source: str, events: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Events as a frame; a value an event leaves out is missing (only key and time are needed)."""
    frame = pd.DataFrame([dict(event) for event in events])
    if source in plan.spec.events:
        wanted = {s.column for s in plan.slots if s.events == source and s.column}
        wanted |= {c.column for s in plan.slots if s.events == source for c in s.where}
    else:
        wanted = set(next(j for j in plan.joins if j.name == source).columns)
    for column in sorted(wanted - set(frame.columns)):
        frame[column] = None
    return frame


def _build(plan: FeaturePlan, source: str, frame: pd.DataFrame, merges: Merges) -> None:
    if source in plan.spec.events:
        tile_merges(plan, source, frame, merges)
        return
    index = next(i for i, join in enumerate(plan.joins) if join.name == source)
    join_merges(plan, index, frame, merges)


def _mark(plan: FeaturePlan, source: str) -> str:
    if source in plan.spec.events:
        return source
    return f"j{next(i for i, join in enumerate(plan.joins) if join.name == source)}"


def ingest_events(
    online: OnlineStore,
    plans: Sequence[FeaturePlan],
    source: str,
    events: Sequence[Mapping[str, Any]],
    *,
    now_ms: int,
) -> Ingested:
    """Merge `events` of `source` into every plan that reads it; see the module docstring."""
    using = [plan for plan in plans if source_time(plan, source) is not None]
    if not using:
        known = sorted({n for p in plans for n in (*p.spec.events, *(j.name for j in p.joins))})
        raise NotFoundError(
            f"no served model reads events {source!r}; sources read here: {known or 'none'}"
        )
    result = Ingested(source)
    for plan in using:
        _ingest(online, plan, source, events, now_ms, result)
        result.namespaces.append(plan.namespace)
    return result


@dataclass
class Prepared:
    """One plan's share of a batch of live events, ready to queue in a transaction."""

    merges: Merges
    meta: list[tuple[str, str, str]]
    pending: dict[bytes, int]
    applied: int
    late: int

    def queue(self, online: OnlineStore, pipe: redis.client.Pipeline, plan: FeaturePlan) -> None:
        """Queue the merges, the live start and the events waiting out the delay."""
        online.queue(pipe, plan, self.merges, self.meta)
        if self.pending:
            pipe.zadd(online.key(plan, "pending"), self.pending)


def prepare_events(
    online: OnlineStore,
    plan: FeaturePlan,
    source: str,
    events: Sequence[Mapping[str, Any]],
    now_ms: int,
    ids: Sequence[str] | None = None,
) -> Prepared:
    """Split `events` into late, due and waiting, and build the merges of the due ones.

    `ids` name the events (stream entry ids) so a waiting event is the same member however
    often it is prepared; without them each gets a random one. Raises `DataError` when an
    event lacks its time.
    """
    column = source_time(plan, source)
    assert column is not None
    frame = _complete(plan, source, events)
    if column not in frame.columns:
        raise DataError(f"events of {source!r} need their time in field {column!r}")
    times = epoch_ms(frame[column], column)
    if (times == np.iinfo("int64").min).any():
        raise DataError(f"every event of {source!r} needs a time in field {column!r}")
    mark = _mark(plan, source)
    watermark = online.meta(plan).get(f"wm:{mark}")
    late = times < watermark if watermark is not None else np.zeros(len(times), dtype=bool)
    due = ~late & (times < now_ms - plan.delay * 1000)
    later = ~late & ~due
    merges = Merges()
    if due.any():
        _build(plan, source, frame.loc[due], merges)
    meta = [(f"live:{mark}", "m", str(int(times[~late].min())))] if (~late).any() else []
    pending = {
        orjson.dumps(
            {
                "s": source,
                "i": ids[int(i)] if ids else secrets.token_hex(8),
                "e": dict(events[int(i)]),
            }
        ): int(times[int(i)] + plan.delay * 1000)
        for i in np.flatnonzero(later)
    }
    return Prepared(merges, meta, pending, int(due.sum()), int(late.sum()))


def _ingest(
    online: OnlineStore,
    plan: FeaturePlan,
    source: str,
    events: Sequence[Mapping[str, Any]],
    now_ms: int,
    result: Ingested,
) -> None:
    prepared = prepare_events(online, plan, source, events, now_ms)
    online.load_scripts()
    try:
        with online.client.pipeline(transaction=True) as pipe:
            prepared.queue(online, pipe, plan)
            pipe.execute()
    except redis.RedisError as exc:
        raise online._failure(exc) from exc
    result.applied = max(result.applied, prepared.applied)
    result.pending = max(result.pending, len(prepared.pending))
    result.late = max(result.late, prepared.late)


def apply_due(online: OnlineStore, plans: Sequence[FeaturePlan], *, now_ms: int) -> int:
    """Merge pending events whose delay has passed; returns how many were applied.

    The pending set is WATCHed: if another process applies the same events first, this
    transaction fails and is retried on what is left, so no event counts twice.
    """
    applied = 0
    for plan in plans:
        if plan.delay > 0:
            applied += _apply_plan(online, plan, now_ms)
    return applied


def _apply_plan(online: OnlineStore, plan: FeaturePlan, now_ms: int) -> int:
    key = online.key(plan, "pending")
    online.load_scripts()
    for _ in range(10):
        try:
            with online.client.pipeline(transaction=True) as pipe:
                pipe.watch(key)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                members = pipe.zrangebyscore(key, "-inf", now_ms, start=0, num=DUE_BATCH)
                if not members:
                    return 0
                due = [m for m in members if isinstance(m, bytes)]
                merges, meta = _due_merges(plan, due)
                pipe.multi()
                online.queue(pipe, plan, merges, meta)
                pipe.zrem(key, *members)
                pipe.execute()
                return len(members)
        except redis.WatchError:
            continue
        except redis.RedisError as exc:
            raise online._failure(exc) from exc
    return 0


def _due_merges(
    plan: FeaturePlan, members: Sequence[bytes]
) -> tuple[Merges, list[tuple[str, str, str]]]:
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for member in members:
        item = orjson.loads(member)
        by_source[item["s"]].append(item["e"])
    merges = Merges()
    meta = []
    for source, events in by_source.items():
        frame = _complete(plan, source, events)
        _build(plan, source, frame, merges)
        column = source_time(plan, source)
        assert column is not None
        first = int(epoch_ms(frame[column], column).min())
        meta.append((f"live:{_mark(plan, source)}", "m", str(first)))
    return merges, meta

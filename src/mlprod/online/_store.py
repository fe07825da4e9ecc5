"""The online feature store: tiles per entity, latest join rows and watermarks, in Redis.

Keys, under a prefix (``mlprod`` by default) and the plan's namespace (a hash of its
definitions, so a changed definition never reads another's tiles):

- ``<prefix>:f:<ns>:e:<key>`` a hash of tiles, ``<slot>:<tile index>`` -> partial;
  expires once the entity's longest window has passed without events;
- ``<prefix>:f:<ns>:j<i>:<key>`` the latest row of join i for that key;
- ``<prefix>:f:<ns>:meta`` watermarks: ``wm:<source>`` (events before it are applied by
  `materialize`) and ``live:<source>`` (the earliest live event applied);
- ``<prefix>:f:<ns>:pending`` live events waiting out the plan's delay.

Writes are transactions (MULTI/EXEC) of MERGE scripts, so a batch and its watermark land
together or not at all. A lookup is one script call per record, pipelined.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from mlprod.errors import OnlineStoreError
from mlprod.features import FeaturePlan, category_string, text_value, window_start
from mlprod.online._scripts import LOOKUP, LOOKUP_SHA, MERGE, MERGE_SHA
from mlprod.online._tiles import PAD, SEP, Merges, entity_hash, entity_ttl, join_hash
from mlprod.store import redis_client, redis_problem

DEFAULT_PREFIX = "mlprod"
Features = dict[str, Any]


def key_text(value: Any) -> str | None:
    """A request's key as the store keeps it (``5``, ``5.0`` and ``"5"`` are one key)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return category_string(value)


def lookup_program(plan: FeaturePlan) -> str:
    """The aggregates as the LOOKUP script reads them: ``function,slot,slot2,hop_ms,tiles``."""
    parts = []
    for feature in plan.aggregates:
        second = str(feature.slots[1]) if len(feature.slots) > 1 else ""
        parts.append(
            f"{feature.function},{feature.slots[0]},{second},{feature.hop * 1000},{feature.tiles}"
        )
    return ";".join(parts)


@dataclass(frozen=True)
class LookupCall:
    """One record's LOOKUP: its keys and arguments, and the cutoff to judge join rows by."""

    keys: tuple[str, ...]
    args: tuple[str, ...]
    cutoff: int


def lookup_call(
    plan: FeaturePlan, prefix: str, row: Mapping[str, Any], at_ms: int, program: str
) -> LookupCall | None:
    """The script call for `row` at `at_ms`; None when the row has no key to look up."""
    key = key_text(row.get(plan.key))
    if key is None:
        return None
    base = f"{prefix}:f:{plan.namespace}:"
    keys = [base + entity_hash(key)]
    for index in range(len(plan.joins)):
        on, _ = plan.join_key(index)
        join_key = key_text(row.get(on))
        keys.append(base + join_hash(index, join_key if join_key is not None else "\x00"))
    cutoff = at_ms - plan.delay * 1000
    return LookupCall(tuple(keys), (str(cutoff), program), cutoff)


def decode(plan: FeaturePlan, reply: Sequence[Any], cutoff: int) -> Features | None:
    """A LOOKUP reply as feature values; None when the store knows nothing of the entity.

    Known means tiles or a join row exist (an entity whose events all left its windows is
    known, with counts of 0, until its tiles expire); an evicted entity is unknown, never 0.
    """
    values: Features = {}
    for feature, raw in zip(plan.aggregates, reply[1:], strict=False):
        values[feature.name] = _aggregate_value(feature.function, raw)
    rows = reply[1 + len(plan.aggregates) : 1 + len(plan.aggregates) + len(plan.joins)]
    partial = _text(reply[-1]) if len(reply) > 1 + len(plan.aggregates) + len(plan.joins) else None
    if partial is not None and _earliest_start(plan, cutoff) < int(float(partial)):
        return None  # evicted and rebuilt since: its windows reach back into lost tiles
    found_row = False
    for index, join in enumerate(plan.joins):
        raw = rows[index] if index < len(rows) else None
        texts = _row_texts(raw, cutoff)
        found_row = found_row or texts is not None
        for position, column in enumerate(join.columns):
            name = f"{join.name}_{column}"
            values[name] = text_value(texts[position]) if texts is not None else None
    return values if bool(reply[0]) or found_row else None


def _earliest_start(plan: FeaturePlan, cutoff: int) -> int:
    """The first millisecond any of the plan's windows reads at `cutoff`."""
    return min((window_start(cutoff, f.window, f.hop) for f in plan.aggregates), default=cutoff)


def _text(raw: Any) -> str | None:
    if raw is None or raw is False:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _aggregate_value(function: str, raw: Any) -> Any:
    text = _text(raw)
    if text is None:
        return None
    if function in ("count", "distinct_count"):
        return int(text)
    if function == "last":
        return text_value(text.split(SEP, 1)[1])
    return float(text)


def _row_texts(raw: Any, cutoff: int) -> list[str | None] | None:
    text = _text(raw)
    if text is None or int(text[:PAD]) >= cutoff:
        return None  # only a row from strictly before the cutoff may answer
    texts: list[str | None] = orjson.loads(text.split(SEP, 1)[1])
    return texts


class OnlineStore:
    """Synchronous access for `materialize`, live events, tests and benchmarks.

    Example::

        online = OnlineStore.open("redis://127.0.0.1:6379/0")
        online.lookup(plan, [{"customer_id": "C1"}], at_ms=now_ms)
    """

    def __init__(self, client: redis.Redis, *, url: str = "", prefix: str = DEFAULT_PREFIX):
        self.client = client
        self.url = url
        self.prefix = prefix
        self._loaded = False

    @classmethod
    def open(cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 30.0) -> OnlineStore:
        """A store over the Redis at `url` (``MLPROD_ONLINE``)."""
        client = redis_client(url, what="MLPROD_ONLINE", timeout=timeout, max_connections=8)
        return cls(client, url=url, prefix=prefix)

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()

    def key(self, plan: FeaturePlan, suffix: str) -> str:
        return f"{self.prefix}:f:{plan.namespace}:{suffix}"

    def _failure(self, exc: redis.RedisError) -> OnlineStoreError:
        return OnlineStoreError(f"the online feature store failed: {redis_problem(exc, self.url)}")

    def load_scripts(self) -> None:
        """Make sure Redis knows both scripts (after a restart it knows none)."""
        try:
            self.client.script_load(MERGE)
            self.client.script_load(LOOKUP)
        except redis.RedisError as exc:
            raise self._failure(exc) from exc
        self._loaded = True

    # --- writing

    def write(
        self,
        plan: FeaturePlan,
        merges: Merges,
        *,
        meta: Iterable[tuple[str, str, str]] = (),
    ) -> None:
        """Merge `merges` and `meta` (watermarks, live starts) in one transaction."""
        self.load_scripts()
        try:
            with self.client.pipeline(transaction=True) as pipe:
                self.queue(pipe, plan, merges, meta)
                pipe.execute()
        except redis.RedisError as exc:
            raise self._failure(exc) from exc

    def queue(
        self,
        pipe: redis.client.Pipeline,
        plan: FeaturePlan,
        merges: Merges,
        meta: Iterable[tuple[str, str, str]] = (),
    ) -> None:
        """Queue the MERGE calls of `merges` and `meta` on a pipeline (scripts loaded)."""
        ttl, now = str(entity_ttl(plan)), str(int(time.time()))
        since = "" if merges.since_ms is None else str(merges.since_ms)
        known = self.key(plan, "known")
        for suffix, items in merges.by_hash.items():
            entity = suffix.startswith("e:")
            args = [ttl if entity else "0", now, since, str(len(items))]
            args += [part for item in items for part in item]
            args += merges.prune.get(suffix, [])
            keys = [self.key(plan, suffix), known] if entity else [self.key(plan, suffix)]
            pipe.evalsha(MERGE_SHA, len(keys), *keys, *args)
        items = list(meta)
        if items:
            parts = [part for item in items for part in item]
            meta_key = self.key(plan, "meta")
            pipe.evalsha(MERGE_SHA, 1, meta_key, "0", now, "", str(len(items)), *parts)

    def meta(self, plan: FeaturePlan) -> dict[str, int]:
        """Watermarks (``wm:<source>``) and live starts (``live:<source>``), epoch ms."""
        try:
            raw = self.client.hgetall(self.key(plan, "meta"))
        except redis.RedisError as exc:
            raise self._failure(exc) from exc
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): int(float(v)) for k, v in raw.items()
        }

    def clear(self, plan: FeaturePlan) -> int:
        """Delete everything the plan's namespace holds; returns the keys deleted."""
        deleted = 0
        try:
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=self.key(plan, "*"), count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += int(self.client.delete(*batch))
                    batch = []
            if batch:
                deleted += int(self.client.delete(*batch))
        except redis.RedisError as exc:
            raise self._failure(exc) from exc
        return deleted

    # --- reading

    def lookup(
        self, plan: FeaturePlan, rows: Sequence[Mapping[str, Any]], *, at_ms: int
    ) -> list[Features | None]:
        """Each row's features as of `at_ms` (None: the store does not know the entity)."""
        program = lookup_program(plan)
        calls = [lookup_call(plan, self.prefix, row, at_ms, program) for row in rows]
        if not self._loaded:
            self.load_scripts()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for call in calls:
                    if call is not None:
                        pipe.evalsha(LOOKUP_SHA, len(call.keys), *call.keys, *call.args)
                replies = iter(pipe.execute())
        except redis.exceptions.NoScriptError:
            self.load_scripts()
            return self.lookup(plan, rows, at_ms=at_ms)
        except redis.RedisError as exc:
            raise self._failure(exc) from exc
        return [None if c is None else decode(plan, next(replies), c.cutoff) for c in calls]

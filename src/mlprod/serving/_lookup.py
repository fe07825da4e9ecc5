"""Aggregates merged into requests before validation, and live events in.

A version trained with ``features.aggregates`` carries its plan in its signature. A
request for it may send only the entity key and its own fields: the server looks the
rest up in the online store, one round trip per request, within the lookup budget, and
merges them in (values the request carries win). An entity the store does not know
follows the spec's ``on_missing`` policy, flagged on the prediction and counted, never
a silent zero; a store that fails follows ``on_error``. Each merged record notes when it
was looked up (``@features_at``), so the skew check recomputes the same instant.

This step sits in front of scoring, apart from request validation, on purpose.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from mlprod._threads import lower_priority
from mlprod._time import utc_now
from mlprod.errors import MlprodError, OnlineStoreError, SchemaError
from mlprod.features import FeaturePlan, empty_values
from mlprod.online import LOOKUP_TIME, FeatureClient, OnlineStore, apply_due, ingest_events
from mlprod.serving._loaded import LoadedVersion
from mlprod.serving._pool import ModelPool, Served
from mlprod.settings import Settings

log = logging.getLogger("mlprod.serving")
MOVE_SECONDS = 0.2  # how often live events waiting out a delay are checked
FLAGS = ("entity_not_found", "features_unavailable")


class FeatureLookups:
    """The server's side of the online store: lookups, live events, the pending mover."""

    def __init__(self, settings: Settings, pool: ModelPool) -> None:
        self.pool = pool
        self.url = settings.online
        self.client = (
            FeatureClient(settings.online, prefix=settings.redis_prefix,
                          timeout=settings.online_timeout,
                          max_connections=settings.online_connections)
            if settings.online else None
        )  # fmt: skip
        self.store = (
            OnlineStore.open(settings.online, prefix=settings.redis_prefix)
            if settings.online
            else None
        )
        counted = (*FLAGS, "rejected", "failed", "events_applied", "events_pending", "events_late")
        self.counts: Counter[str] = Counter(dict.fromkeys(counted, 0))
        self._plans: dict[str, FeaturePlan] = {}
        self._stop = threading.Event()
        self._mover: threading.Thread | None = None

    def plan_of(self, model: LoadedVersion) -> FeaturePlan | None:
        """The aggregate plan in a version's signature (compiled once per namespace)."""
        document = model.signature.get("online")
        if not document:
            return None
        namespace = str(document.get("namespace"))
        if namespace not in self._plans:
            self._plans[namespace] = FeaturePlan.from_document(document)
        return self._plans[namespace]

    def served_plans(self) -> list[FeaturePlan]:
        """Every plan a routed or shadow version uses, once each."""
        found: dict[str, FeaturePlan] = {}
        for served in self.pool.table().values():
            for model in (*served.routes, *served.shadows):
                plan = self.plan_of(model)
                if plan is not None:
                    found.setdefault(plan.namespace, plan)
        return list(found.values())

    async def merge(
        self, target: LoadedVersion | Served, records: Any
    ) -> tuple[Any, list[list[str]] | None]:
        """`records` with their aggregates merged in, and each record's flags.

        Returns the records untouched (and no flags) for a model without aggregates.
        """
        models = target.routes if isinstance(target, Served) else (target,)
        plans = {p.namespace: p for p in (self.plan_of(m) for m in models) if p is not None}
        if not plans or not isinstance(records, list) or not records:
            return records, None
        merged = [dict(r) if isinstance(r, dict) else r for r in records]
        flags: list[list[str]] = [[] for _ in merged]
        for plan in plans.values():
            await self._merge_plan(plan, merged, flags)
        return merged, flags

    async def _merge_plan(
        self, plan: FeaturePlan, merged: list[Any], flags: list[list[str]]
    ) -> None:
        names = plan.names()
        need = [
            i
            for i, r in enumerate(merged)
            if isinstance(r, dict) and any(n not in r for n in names)
        ]
        if not need:
            return
        now = utc_now()
        failed = False
        try:
            if self.client is None:
                raise OnlineStoreError(
                    "this model's aggregates live in the online store, and MLPROD_ONLINE does "
                    "not name one; set it to the Redis `mlprod features materialize` fills"
                )
            found = await self.client.lookup(
                plan, [merged[i] for i in need], at_ms=int(now.timestamp() * 1000)
            )
        except OnlineStoreError:
            if plan.spec.on_error == "fail" or plan.spec.on_missing == "reject":
                self.counts["failed"] += len(need)
                raise
            found, failed = [None] * len(need), True
        stamp = now.isoformat()
        for index, values in zip(need, found, strict=True):
            record = merged[index]
            if values is None:
                values = self._missing(plan, record, index, failed)
                flags[index].append(FLAGS[failed])
                self.counts[FLAGS[failed]] += 1
            for name in names:
                record.setdefault(name, values[name])
            record[LOOKUP_TIME] = stamp

    def _missing(
        self, plan: FeaturePlan, record: dict[str, Any], index: int, failed: bool
    ) -> dict[str, Any]:
        if plan.spec.on_missing == "reject" and not failed:
            self.counts["rejected"] += 1
            key = record.get(plan.key)
            raise SchemaError(
                f"record {index}: the online feature store knows no {plan.key} {key!r} "
                "(this model rejects unknown entities: features.aggregates.on_missing)",
                fields=[{"record": index, "field": plan.key,
                         "expected": "an entity the online feature store knows"}],
            )  # fmt: skip
        if plan.spec.on_missing == "defaults":
            return empty_values(plan)
        return dict.fromkeys(plan.names())

    def ingest(self, source: Any, events: Any) -> dict[str, Any]:
        """``POST /v1/events``: merge live events into every served plan that reads them."""
        if not isinstance(source, str) or not isinstance(events, list) or not events:
            raise SchemaError(
                'the body must be {"source": "<event source>", "events": [{...}, ...]}',
                fields=[{"field": "events", "expected": "a source name and a list of objects"}],
            )
        if not all(isinstance(event, dict) for event in events):
            raise SchemaError("every event must be an object", fields=[{"field": "events"}])
        if self.store is None:
            raise OnlineStoreError("no online feature store: set MLPROD_ONLINE to a Redis URL")
        now_ms = int(utc_now().timestamp() * 1000)
        try:
            done = ingest_events(self.store, self.served_plans(), source, events, now_ms=now_ms)
        except MlprodError as exc:
            if exc.status == 400:  # a DataError: the events are not what the source needs
                raise SchemaError(exc.message, fields=[{"field": "events"}]) from None
            raise
        self.counts["events_applied"] += done.applied
        self.counts["events_pending"] += done.pending
        self.counts["events_late"] += done.late
        return done.document()

    def start(self) -> None:
        """Move live events whose delay has passed into the windows, in the background."""
        if self.store is None:
            return
        self._stop.clear()
        self._mover = threading.Thread(target=self._move, name="mlprod-events", daemon=True)
        self._mover.start()

    def _move(self) -> None:
        lower_priority()
        while not self._stop.wait(MOVE_SECONDS):
            plans = [plan for plan in self.served_plans() if plan.delay > 0]
            if not plans or self.store is None:
                continue
            try:
                now_ms = int(utc_now().timestamp() * 1000)
                self.counts["events_applied"] += apply_due(self.store, plans, now_ms=now_ms)
            except OnlineStoreError as exc:
                log.warning("live events wait: %s", exc)

    async def stop(self) -> None:
        self._stop.set()
        if self._mover is not None:
            self._mover.join(timeout=5)
        if self.client is not None:
            await self.client.close()
        if self.store is not None:
            self.store.close()

    def stats(self) -> dict[str, float]:
        """Flagged, rejected and failed records, live events, and the lookups' outcomes."""
        found = {key: float(value) for key, value in self.counts.items()}
        if self.client is not None:
            found.update(self.client.stats())
        return found


def add_flags(predictions: Sequence[dict[str, Any]], flags: list[list[str]] | None) -> None:
    """Put each record's lookup flags on its prediction."""
    if not flags:
        return
    for prediction, extra in zip(predictions, flags, strict=True):
        if extra:
            prediction["flags"] = [*prediction.get("flags", []), *extra]

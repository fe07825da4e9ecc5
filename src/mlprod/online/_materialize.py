"""``materialize``: bring the online store up to date from the event sources, incrementally.

Each source has a watermark in the store: events before it are applied. A run applies
the events from the watermark up to ``until - delay`` (the same cutoff a request at
``until`` would use) in time-ordered chunks; each chunk's merges and its new watermark
commit in one transaction, so a run killed half-way resumes where it stopped and never
applies an event twice. A source that also receives live events stops at the first live
event's time: live events own what comes after, so nothing is counted by both paths.

Example::

    report = materialize(online, plan, events=read_event_sources(plan),
                         tables=read_join_tables(plan))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from mlprod._time import as_utc, utc_now
from mlprod.features import FeaturePlan, epoch_ms
from mlprod.online._store import OnlineStore
from mlprod.online._tiles import Merges, join_merges, tile_merges

CHUNK_EVENTS = 10_000  # one transaction; Redis runs it whole, so keep it short
Progress = Callable[[str], None]


@dataclass
class SourceRun:
    """What one source contributed to a run."""

    name: str
    events: int
    entities: int
    since_ms: int | None
    until_ms: int


@dataclass
class Materialized:
    """What `materialize` did, per source, and the cutoff it stopped at."""

    namespace: str
    until_ms: int
    sources: list[SourceRun] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(source.events for source in self.sources)


def materialize(
    online: OnlineStore,
    plan: FeaturePlan,
    *,
    events: Mapping[str, pd.DataFrame],
    tables: Sequence[pd.DataFrame] = (),
    until: datetime | None = None,
    full: bool = False,
    progress: Progress | None = None,
    chunk_events: int = CHUNK_EVENTS,
) -> Materialized:
    """Apply every event since each source's watermark, up to `until` minus the delay.

    `full` clears the plan's namespace first and rebuilds it from the whole history;
    `chunk_events` is about how many events commit in one transaction.
    """
    say = progress or (lambda _: None)
    stop = int(as_utc(until or utc_now()).timestamp() * 1000) - plan.delay * 1000
    if full:
        say(f"clearing namespace {plan.namespace}")
        online.clear(plan)
    meta = online.meta(plan)
    report = Materialized(plan.namespace, stop)
    for name in sorted({f.events for f in plan.aggregates}):
        raw = events[name]
        times = epoch_ms(raw[plan.spec.events[name].time], plan.spec.events[name].time)
        build = lambda part, merges, name=name: tile_merges(plan, name, part, merges)  # noqa: E731
        run = _source(online, plan, name, raw, times, meta, (stop, chunk_events), build, say)
        report.sources.append(run)
    for index, join in enumerate(plan.joins):
        table = tables[index]
        times = epoch_ms(table[join.time], join.time)
        build = lambda part, merges, index=index: join_merges(plan, index, part, merges)  # noqa: E731
        report.sources.append(
            _source(online, plan, f"j{index}", table, times, meta, (stop, chunk_events), build, say)
        )
    return report


def _source(
    online: OnlineStore,
    plan: FeaturePlan,
    name: str,
    raw: pd.DataFrame,
    times: np.ndarray,
    meta: Mapping[str, int],
    limits: tuple[int, int],
    build: Callable[[pd.DataFrame, Merges], None],
    say: Progress,
) -> SourceRun:
    stop, size = limits
    since = meta.get(f"wm:{name}")
    live = meta.get(f"live:{name}")
    end = min(stop, live) if live is not None else stop
    low = since if since is not None else np.iinfo("int64").min + 1
    chosen = np.flatnonzero((times >= low) & (times < end))
    chosen = chosen[np.argsort(times[chosen], kind="stable")]
    entities: set[str] = set()
    bounds = _chunks(times[chosen], size)
    for number, (first, last) in enumerate(bounds):
        merges = Merges()
        build(raw.iloc[chosen[first:last]], merges)
        entities.update(key.split(":", 1)[1] for key in merges.by_hash)
        mark = int(times[chosen[last]]) if last < len(chosen) else end
        online.write(plan, merges, meta=[(f"wm:{name}", "x", str(mark))])
        say(f"{name}: chunk {number + 1}/{len(bounds)}, {last:,} of {len(chosen):,} events")
    if not bounds and (since is None or end > since):
        online.write(plan, Merges(), meta=[(f"wm:{name}", "x", str(end))])
    return SourceRun(name, len(chosen), len(entities), since, end)


def _chunks(times: np.ndarray, size: int = CHUNK_EVENTS) -> list[tuple[int, int]]:
    """Positions splitting sorted `times` into chunks of about `size`, never inside one time.

    A chunk's watermark is the next chunk's first time, so no time may span two chunks.
    """
    bounds, first = [], 0
    while first < len(times):
        last = min(first + size, len(times))
        while last < len(times) and times[last] == times[last - 1]:
            last += 1
        bounds.append((first, last))
        first = last
    return bounds

"""Features beyond one row, orchestrated: materialize, the skew check, the datamart.

Plain functions over a spec and `Settings`, so the CLI, a notebook and the scheduler's
``materialize`` job call the same thing::

    materialize_features("mlprod.yaml", settings=Settings(online="redis://..."))
    feature_skew("churn@production", spec="mlprod.yaml", since=parse_since("1d"))
    cache_sources("mlprod.yaml", settings=Settings(cache="redis://..."))
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mlprod.data import CacheEntry, DataCache
from mlprod.errors import SpecError
from mlprod.features import FeaturePlan, compile_plan, read_event_sources, read_join_tables
from mlprod.online import Materialized, OnlineStore, SkewReport, materialize, skew_report
from mlprod.pipelines._context import open_store
from mlprod.pipelines._progress import Steps
from mlprod.predlog import read_predictions
from mlprod.registry import resolve
from mlprod.settings import Settings
from mlprod.spec import ProjectSpec, load_spec


def spec_plan(spec: ProjectSpec) -> FeaturePlan:
    """The aggregate plan a spec declares; a SpecError when it declares none."""
    aggregates, key = spec.features.aggregates, spec.aggregate_key()
    if aggregates is None or key is None:
        raise SpecError(
            f"the spec of {spec.name!r} has no features.aggregates; there is nothing to "
            "materialize or compare (README, section Features)"
        )
    return compile_plan(aggregates, key=key)


def _spec(spec: str | Path | ProjectSpec) -> ProjectSpec:
    return spec if isinstance(spec, ProjectSpec) else load_spec(spec)


def datamart(settings: Settings) -> DataCache | None:
    """The datamart `settings` name (``MLPROD_CACHE``), or None."""
    return DataCache.open(settings.cache, prefix=settings.redis_prefix) if settings.cache else None


def online_store(settings: Settings) -> OnlineStore:
    """The online store `settings` name; a SpecError when ``MLPROD_ONLINE`` is unset."""
    if not settings.online:
        raise SpecError(
            "no online feature store: set MLPROD_ONLINE (or --online) to a Redis URL, "
            "e.g. redis://127.0.0.1:6379/0"
        )
    return OnlineStore.open(settings.online, prefix=settings.redis_prefix)


def materialize_features(
    spec: str | Path | ProjectSpec = "mlprod.yaml",
    *,
    settings: Settings | None = None,
    until: datetime | None = None,
    full: bool = False,
    quiet: bool = True,
) -> Materialized:
    """Bring the online store up to date with the spec's event sources, incrementally.

    Each run applies the events since the last one (per-source watermarks in Redis);
    `full` rebuilds the namespace from scratch. This is the scheduler's materialize job.
    """
    settings = settings or Settings()
    loaded = _spec(spec)
    plan = spec_plan(loaded)
    steps = Steps(quiet=quiet)
    cache = datamart(settings)
    online = online_store(settings)
    try:
        with steps.live(f"materializing {loaded.name}"):
            steps(f"reading {len(plan.spec.events)} event source(s), {len(plan.joins)} join(s)")
            events = read_event_sources(plan, cache=cache)
            tables = read_join_tables(plan, cache=cache)
            done = materialize(
                online, plan, events=events, tables=tables, until=until, full=full, progress=steps
            )
    finally:
        online.close()
        if cache is not None:
            cache.close()
    steps(f"applied {done.events:,} event(s) to namespace {plan.namespace}")
    return done


def feature_skew(
    ref: str,
    *,
    spec: str | Path | ProjectSpec = "mlprod.yaml",
    since: datetime | None = None,
    settings: Settings | None = None,
) -> SkewReport:
    """Served aggregate values from the prediction log against an offline recomputation.

    The plan is the version's own (from its signature); the event sources are the spec's,
    which must declare the same definitions.
    """
    settings = settings or Settings()
    loaded = _spec(spec)
    meta, _ = open_store(None, settings)
    with meta:
        record = resolve(meta, ref)
        document = record.signature.get("online")
        if not document:
            raise SpecError(f"{ref} was trained without features.aggregates: nothing to compare")
        logged = read_predictions(meta, record.model, since=since)
    plan = spec_plan(loaded)
    if plan.namespace != document.get("namespace"):
        raise SpecError(
            f"the spec's aggregates (namespace {plan.namespace}) differ from those {ref} was "
            f"trained with ({document.get('namespace')}); check out the spec it was trained on"
        )
    if len(logged):
        logged = logged.loc[logged["version"] == record.version]
    cache = datamart(settings)
    try:
        events = read_event_sources(plan, cache=cache)
        tables = read_join_tables(plan, cache=cache)
    finally:
        if cache is not None:
            cache.close()
    records = list(logged["record"]) if len(logged) else []
    return skew_report(f"{record.model}@{record.version}", plan, records, events=events,
                       tables=tables)  # fmt: skip


def cache_sources(
    spec: str | Path | ProjectSpec = "mlprod.yaml",
    *,
    settings: Settings | None = None,
    ttl: int | None = None,
    quiet: bool = True,
) -> list[tuple[str, CacheEntry]]:
    """Put the spec's data source, event sources and join tables in the datamart."""
    settings = settings or Settings()
    loaded = _spec(spec)
    cache = datamart(settings)
    if cache is None:
        raise SpecError("no datamart: set MLPROD_CACHE (or --cache) to a Redis URL")
    steps = Steps(quiet=quiet)
    sources: list[tuple[str, object]] = [("data.source", loaded.data.source)]
    if loaded.features.aggregates is not None:
        aggregates = loaded.features.aggregates
        sources += [(f"events.{n}", e.source) for n, e in aggregates.events.items()]
        sources += [(f"joins.{j.name}", j.source) for j in aggregates.joins]
    done = []
    try:
        for label, source in sources:
            steps(f"caching {label}")
            entry = cache.put(source, ttl=ttl or settings.cache_ttl)  # type: ignore[arg-type]
            done.append((label, entry))
    finally:
        cache.close()
    return done

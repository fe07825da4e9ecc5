"""``mlprod features materialize|stream|skew`` and ``mlprod data cache``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlprod._time import parse_duration
from mlprod.cli._common import (
    JsonOption,
    StoreOption,
    console,
    print_json,
    settings_for,
    since_option,
)
from mlprod.cli._experiments import data_app, features_app
from mlprod.errors import SpecError
from mlprod.settings import Settings
from mlprod.spec import SPEC_FILE, SqlSource

OnlineOption = Annotated[
    str | None,
    typer.Option("--online", help="Redis URL of the online store (default: $MLPROD_ONLINE)."),
]
CacheOption = Annotated[
    str | None,
    typer.Option("--cache", help="Redis URL of the datamart (default: $MLPROD_CACHE)."),
]


def materialize(
    spec: Annotated[Path, typer.Argument(help="The spec file.")] = Path(SPEC_FILE),
    until: Annotated[
        str | None, typer.Option(help="Apply events up to this time (ISO; default now).")
    ] = None,
    full: Annotated[bool, typer.Option(help="Clear the namespace and rebuild it.")] = False,
    online: OnlineOption = None,
    cache: CacheOption = None,
    json: JsonOption = False,
) -> None:
    """Write each entity's aggregates to the online store, from the events since last run."""
    from mlprod.pipelines import materialize_features

    settings = _with(settings_for(None), online=online, cache=cache)
    when = since_option(until, "--until") if until else None
    done = materialize_features(spec, settings=settings, until=when, full=full, quiet=json)
    if json:
        print_json(
            {
                "namespace": done.namespace,
                "until_ms": done.until_ms,
                "events": done.events,
                "sources": [vars(source) for source in done.sources],
            }
        )
        return
    for source in done.sources:
        console.print(
            f"{source.name}: {source.events:,} event(s) for {source.entities:,} entities applied"
        )
    console.print(f"namespace {done.namespace} is current up to {done.until_ms} (epoch ms)")


def stream(
    spec: Annotated[Path, typer.Argument(help="The spec file.")] = Path(SPEC_FILE),
    consumer: Annotated[
        str | None, typer.Option(help="This reader's name in the groups (default: host name).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Entries read and committed at a time.")] = 500,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics (counts, lag) on 127.0.0.1:PORT.")
    ] = None,
    online: OnlineOption = None,
    json: JsonOption = False,
) -> None:
    """Read the event sources' Redis streams into the online store until stopped.

    Stops cleanly on SIGTERM or Ctrl-C: the batch in hand is applied and acknowledged.
    """
    from mlprod.pipelines import stream_features

    settings = _with(settings_for(None), online=online)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    stats = stream_features(spec, stop=stop, settings=settings, consumer=consumer, batch=batch,
                            metrics_port=metrics_port, quiet=json)  # fmt: skip
    if json:
        print_json(stats.document())


def skew(
    ref: Annotated[str, typer.Argument(help="Model reference, e.g. churn@production.")],
    spec: Annotated[Path, typer.Option(help="The spec with the event sources.")] = Path(SPEC_FILE),
    since: Annotated[str, typer.Option(help="Logged requests since (7d, ISO time).")] = "1d",
    store: StoreOption = None,
    cache: CacheOption = None,
    json: JsonOption = False,
) -> None:
    """Compare served aggregate values with an offline recomputation, per feature."""
    from mlprod.pipelines import feature_skew

    settings = _with(settings_for(store), cache=cache)
    report = feature_skew(ref, spec=spec, since=since_option(since), settings=settings)
    if json:
        print_json(report.document())
        return
    table = Table("feature", "compared", "mismatches", "rate",
                  title=f"{report.model}: {report.rows:,} logged request(s)")  # fmt: skip
    for item in report.features:
        table.add_row(item.feature, f"{item.compared:,}", f"{item.mismatches:,}",
                      f"{item.rate:.2%}")  # fmt: skip
    console.print(table)


def cache_command(
    source: Annotated[
        str | None, typer.Argument(help="A CSV or Parquet file (default: the spec's sources).")
    ] = None,
    query: Annotated[str | None, typer.Option(help="A SQL query instead of a file.")] = None,
    url: Annotated[str | None, typer.Option(help="The database URL of --query.")] = None,
    spec: Annotated[Path, typer.Option(help="Spec whose sources to cache.")] = Path(SPEC_FILE),
    ttl: Annotated[str, typer.Option(help="How long the entry stays (1h, 12h, 7d).")] = "1h",
    cache: CacheOption = None,
    json: JsonOption = False,
) -> None:
    """Keep a query's or file's rows in Redis (Arrow IPC, zstd) for train and notebooks."""
    from mlprod.data import DataCache
    from mlprod.pipelines import cache_sources

    settings = _with(settings_for(None), cache=cache)
    seconds = int(parse_duration(ttl).total_seconds())
    if source is None and query is None:
        done = cache_sources(spec, settings=settings, ttl=seconds, quiet=json)
    else:
        if not settings.cache:
            raise SpecError("no datamart: set MLPROD_CACHE or pass --cache redis://...")
        if query is not None and url is None:
            raise SpecError("--query needs --url, the database to run it on")
        target = SqlSource(url=url, query=query) if query is not None and url else str(source)
        with_cache = DataCache.open(settings.cache, prefix=settings.redis_prefix)
        try:
            done = [(str(source or "query"), with_cache.put(target, ttl=seconds))]
        finally:
            with_cache.close()
    if json:
        print_json([{"source": label, **vars(entry)} for label, entry in done])
        return
    for label, entry in done:
        console.print(
            f"{label}: {entry.rows:,} rows, {entry.bytes / 1e6:.1f} MB compressed, "
            f"{entry.seconds:.1f}s; fresh until {entry.expires_at:%Y-%m-%d %H:%M:%S} UTC"
        )


def _with(settings: Settings, **urls: str | None) -> Settings:
    """Settings with the URLs given on the command line winning over the environment."""
    update = {key: value for key, value in urls.items() if value}
    return settings.model_copy(update=update) if update else settings


# The two groups are _experiments'; these commands join them here, so that running one
# of them imports this module and `mlprod.cli` imports neither.
features_app.command("materialize")(materialize)
features_app.command("stream")(stream)
features_app.command("skew")(skew)
data_app.command("cache")(cache_command)

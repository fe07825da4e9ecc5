"""``mlprod serve`` and ``mlprod dashboard``: online scoring and the web dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from mlprod.cli._common import (
    StoreOption,
    err_console,
    open_stores,
    settings_for,
    styled,
)
from mlprod.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    alias: Annotated[
        str, typer.Option(help="Serve the version behind this alias of every model.")
    ] = "production",
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes sharing the port (default 1).")
    ] = None,
    ui: Annotated[
        bool | None, typer.Option("--ui/--no-ui", help="Mount the dashboard under /ui.")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Serve every model that has a production alias over REST."""
    settings = settings_for(store)
    if ui is not None:
        settings = settings.model_copy(update={"ui": ui})
    host, port = host or settings.host, port or settings.port
    # the app decides open routes and allowed Host names from the address it is bound to
    settings = settings.model_copy(update={"host": host, "port": port})
    with _alert_checks(settings):
        if (workers or settings.workers) > 1:
            from mlprod.serving import run_workers

            count = workers or settings.workers
            err_console.print(f"serving with {count} worker processes on http://{host}:{port}")
            run_workers(settings, alias, host=host, port=port, workers=count, factory=build_app)
            return
        _serve_one(settings, alias, host, port)


@contextmanager
def _alert_checks(settings: Settings) -> Iterator[None]:
    """Check every model's alerts on a timer while the server runs (one watcher per host)."""
    if not settings.monitor:
        yield
        return
    from mlprod.errors import StoreError
    from mlprod.monitoring import Watcher
    from mlprod.store import Store, open_artifacts

    try:
        meta, artifacts = open_stores(settings, create=True)
    except StoreError:  # the server starts anyway; the watcher checks once the store is back
        meta, artifacts = Store.open_later(settings.store_url()), open_artifacts(settings)
    watcher = Watcher(meta, artifacts, settings)
    watcher.start()
    try:
        yield
    finally:
        watcher.stop()
        meta.close()


def build_app(settings: Settings, alias: str) -> FastAPI:
    """The serving app, with the dashboard under /ui when MLPROD_UI (or --ui) asks for it."""
    from mlprod.serving import create_app

    app = create_app(settings, alias=alias)
    if settings.ui:
        from mlprod.dashboard import mount_dashboard

        mount_dashboard(app, settings, app.state.pool.store, app.state.pool.artifacts)
    return app


def _serve_one(settings: Settings, alias: str, host: str, port: int) -> None:
    from mlprod.serving import run_server

    app = build_app(settings, alias)
    served = app.state.pool.status()["models"]
    if not served:
        err_console.print(
            styled(
                "yellow", f"no model has alias {alias!r} yet; /readyz answers 503 until one does"
            )
        )
    err_console.print(
        f"serving {', '.join(f'{n}@{v}' for n, v in served.items()) or 'nothing'} on http://{host}:{port}"
    )
    closed = [scope for scope in ("predict", "outcomes") if not settings.opens(scope)]
    if closed:
        err_console.print(
            f"{' and '.join(closed)} need a token on {host} (`mlprod tokens create NAME "
            f"--scope {closed[0]}`); MLPROD_{closed[0].upper()}_OPEN=true opens them"
        )
    # SIGTERM: /readyz turns 503, in-flight requests drain, exit within the grace period
    run_server(app, host=host, port=port, grace_period=settings.grace_period, state=app.state.guard)


def dashboard(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int, typer.Option(help="Port.")] = 8050,
    store: StoreOption = None,
) -> None:
    """The web dashboard: every model's live precision and recall, drift and traffic."""
    from mlprod.dashboard import create_dashboard
    from mlprod.serving import GuardState, run_server

    settings = settings_for(store)
    open_stores(settings)[0].close()  # only reads: outside a project, say so and stop
    host = host or settings.host
    settings = settings.model_copy(update={"host": host, "port": port})  # allowed Host names
    app = create_dashboard(settings)
    app.state.guard = GuardState()  # SIGTERM ends the event streams, then the server
    err_console.print(f"dashboard on http://{host}:{port}/ui/")
    with _alert_checks(settings):
        run_server(
            app, host=host, port=port, grace_period=settings.grace_period, state=app.state.guard
        )

"""The dashboard: server-rendered pages under /ui, kept live over server-sent events.

FastAPI and Jinja2 render every page; plotly.js is served from the installed plotly
package (no CDN, works offline); one small hand-written script draws charts, follows
the event stream and sends admin actions. A page's live region is rendered by the same
template on load and on every change, so what appears later looks exactly like what was
there at first.

Reading is open unless ``MLPROD_UI_OPEN=false``, then it needs any valid token (sent as
a bearer header, or once through /ui/login, which keeps it in an HttpOnly cookie).
Admin actions (promote, rollback, routes) always need an admin token.

Example::

    app = create_dashboard(Settings(store="demo/.mlprod"))    # mlprod dashboard
    mount_dashboard(serving_app, settings, store, artifacts)   # /ui of mlprod serve
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mlprod.dashboard import _data
from mlprod.dashboard._charts import (
    class_figure,
    drift_figure,
    performance_figure,
    shares_figure,
    traffic_figure,
)
from mlprod.dashboard._training import training_detail
from mlprod.errors import MlprodError, NotFoundError, UnauthorizedError
from mlprod.monitoring import Performance, activity_marker
from mlprod.registry import (
    Route,
    clear_deployment,
    get_version,
    list_versions,
    rollback,
    set_deployment,
)
from mlprod.scheduling import loop_marker
from mlprod.serving import Authenticator, CrashLog, HostCheck
from mlprod.settings import Settings
from mlprod.store import ArtifactStore, Store, open_artifacts

POLL_SECONDS = 0.5  # how often an open page's stream looks for changes
KEEPALIVE_SECONDS = 15.0
COOKIE = "mlprod_token"
_SCRIPT_SAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


class Dashboard:
    """Everything the routes share: the store, templates and the token checks."""

    def __init__(self, settings: Settings, store: Store, artifacts: ArtifactStore) -> None:
        self.settings = settings
        self.store = store
        self.artifacts = artifacts
        self.auth = Authenticator(store, predict_open=False)
        self.templates = Environment(
            loader=PackageLoader("mlprod.dashboard", "templates"),
            autoescape=select_autoescape(["html", "j2"]),
        )
        self.templates.filters["rate"] = _rate
        self.templates.filters["tojson_safe"] = lambda value: json.dumps(value).translate(
            _SCRIPT_SAFE
        )

    def render(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)

    async def reader(self, request: Request) -> None:
        """Lets a request read unless reading needs a token and it has none."""
        if self.settings.ui_open:
            return
        secret = _bearer(request) or request.cookies.get(COOKIE)
        token = await self.auth.cache.lookup(secret) if secret else None
        if token is None:
            raise UnauthorizedError("the dashboard needs a token: sign in at /ui/login")

    async def admin(self, request: Request) -> str:
        """The acting token's name, for the audit log; 401/403 without an admin token."""
        token = await self.auth.authorize(_bearer(request), "admin")
        assert token is not None  # admin is never open
        return f"token:{token.name}"

    def live_update(self, page: str, name: str | None, period_name: str) -> dict[str, Any]:
        """The live region of a page and its charts, as sent on load and on every change."""
        span = _data.period(period_name)
        if page == "model" and name:
            detail = _data.model_detail(self.store, self.artifacts, name, span)
            return {"html": self.render("_model_live.html.j2", d=detail), "charts": charts(detail)}
        view = _data.overview(self.store, self.artifacts, span)
        return {"html": self.render("_overview_live.html.j2", o=view), "charts": {}}

    def marker(self) -> tuple[Any, ...]:
        recent = datetime.now(UTC) - timedelta(hours=1)
        return (*activity_marker(self.store, recent=recent), *loop_marker(self.store))


def charts(detail: dict[str, Any]) -> dict[str, Any]:
    """The model page's charts by element id; a multiclass model's are per class."""
    report = detail["report"]
    classes = detail["classes"]
    if classes is None:
        return {
            "chart-precision": performance_figure(report, "precision"),
            "chart-recall": performance_figure(report, "recall"),
            "chart-auc": performance_figure(report, "roc_auc"),
            "chart-traffic": traffic_figure(report),
            "chart-drift": drift_figure(report, detail["production"]),
        }
    version = classes["version"]
    return {
        "chart-accuracy": performance_figure(report, "accuracy"),
        "chart-class-precision": class_figure(report, version, "precision"),
        "chart-class-recall": class_figure(report, version, "recall"),
        "chart-shares": shares_figure(report, version),
        "chart-traffic": traffic_figure(report),
        "chart-drift": drift_figure(report, detail["production"]),
    }


def _rate(row: Performance | Mapping[str, Any] | None, metric: str) -> str:
    """``0.812 (0.780-0.841)`` or ``-``."""
    figures = row.model_dump() if isinstance(row, Performance) else (row or {})
    if figures.get(metric) is None:
        return "-"
    low, high = figures.get(f"{metric}_low"), figures.get(f"{metric}_high")
    interval = f" ({low:.3f}-{high:.3f})" if low is not None and high is not None else ""
    return f"{figures[metric]:.3f}{interval}"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None


def dashboard_router(board: Dashboard) -> APIRouter:
    """Every dashboard route, under /ui."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    read = [Depends(board.reader)]
    _pages(router, board, read)
    _live(router, board, read)
    _admin(router, board)
    _static(router)
    _login(router, board)
    return router


def _pages(router: APIRouter, board: Dashboard, read: list[Any]) -> None:
    @router.get("/", response_class=HTMLResponse, dependencies=read)
    async def overview_page(period: str = "24h") -> str:
        update = await run_in_threadpool(board.live_update, "overview", None, period)
        return board.render(
            "overview.html.j2",
            update=update,
            period=period,
            periods=list(_data.PERIODS),
            page="overview",
            name=None,
        )

    @router.get("/models/{name}", response_class=HTMLResponse, dependencies=read)
    async def model_page(name: str, period: str = "7d") -> str:
        update = await run_in_threadpool(board.live_update, "model", name, period)
        versions = await run_in_threadpool(list_versions, board.store, name)
        return board.render(
            "model.html.j2",
            update=update,
            period=period,
            name=name,
            periods=list(_data.PERIODS),
            page="model",
            versions=[v.version for v in versions],
        )

    @router.get("/models/{name}/versions/{version}", response_class=HTMLResponse, dependencies=read)
    async def version_page(name: str, version: int) -> str:
        detail = await run_in_threadpool(_data.version_detail, board.store, name, version)
        return board.render(
            "version.html.j2",
            d=detail,
            charts=detail["training"]["charts"],
            page="version",
            name=name,
        )

    @router.get("/runs/{run_id}/training", response_class=HTMLResponse, dependencies=read)
    async def training_page(run_id: str) -> str:
        detail = await run_in_threadpool(training_detail, board.store, run_id)
        return board.render(
            "training.html.j2", d=detail, charts=detail["charts"], page="training", name=None
        )

    @router.get("/api/runs/{run_id}/training", dependencies=read)
    async def training_data(run_id: str) -> dict[str, Any]:
        """What the training page polls while the run is running."""
        return await run_in_threadpool(training_detail, board.store, run_id)

    @router.get("/runs", response_class=HTMLResponse, dependencies=read)
    async def runs_page(
        model: str = "", where: str = "", since: str = "", user: str = "", sort: str = ""
    ) -> str:
        filters = {"model": model, "where": where, "since": since, "user": user, "sort": sort}
        try:
            found = await run_in_threadpool(_data.find_runs, board.store, filters)
            error = None
        except MlprodError as exc:  # a bad filter: show it beside the form, keep the form
            found, error = {"filters": filters, "runs": [], "figures": []}, exc.message
        return board.render(
            "runs.html.j2", d=found, filters=filters, error=error, page="runs", name=None
        )

    @router.get("/runs/compare", response_class=HTMLResponse, dependencies=read)
    async def compare_page(run: list[str] = Query(default=[])) -> str:
        detail = await run_in_threadpool(_data.compare_runs, board.store, board.artifacts, run)
        return board.render(
            "compare.html.j2", d=detail, charts=detail["charts"], page="compare", name=None
        )

    @router.get("/models/{name}/versions/{version}/report", dependencies=read)
    async def version_report(name: str, version: int) -> Response:
        """The training report stored in the bundle (addressed by the version, not a path)."""
        record = await run_in_threadpool(get_version, board.store, name, version)
        path = board.artifacts.path(record.bundle_id) / "report.html"
        if not path.is_file():
            raise NotFoundError(f"{name}@{version} has no training report")
        return FileResponse(path, media_type="text/html")

    @router.get("/api/overview", dependencies=read)
    async def overview_data(period: str = "24h") -> dict[str, Any]:
        return await run_in_threadpool(
            _data.overview, board.store, board.artifacts, _data.period(period)
        )

    @router.get("/api/models/{name}", dependencies=read)
    async def model_data(name: str, period: str = "7d") -> dict[str, Any]:
        span = _data.period(period)
        return await run_in_threadpool(_data.model_detail, board.store, board.artifacts, name, span)


def _live(router: APIRouter, board: Dashboard, read: list[Any]) -> None:
    @router.get("/events", dependencies=read)
    async def events(
        request: Request, page: str = "overview", name: str | None = None, period: str = "24h"
    ) -> StreamingResponse:
        """Server-sent events: the page's live region again whenever the store changes."""
        _data.period(period)  # a bad period is a 404 now, not a broken stream later

        async def stream() -> AsyncIterator[str]:
            loop = asyncio.get_running_loop()
            last: tuple[Any, ...] | None = None
            beat = loop.time()
            yield "retry: 1000\n\n"
            while not await request.is_disconnected() and not _draining(request):
                marker = await run_in_threadpool(board.marker)
                if marker != last:
                    last = marker
                    update = await run_in_threadpool(board.live_update, page, name, period)
                    yield f"event: update\ndata: {json.dumps(update)}\n\n"
                    beat = loop.time()
                elif loop.time() - beat > KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    beat = loop.time()
                await asyncio.sleep(POLL_SECONDS)

        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _draining(request: Request) -> bool:
    guard = getattr(request.app.state, "guard", None)
    return bool(getattr(guard, "draining", False))


class PromoteBody(BaseModel):
    version: int = Field(ge=1)
    alias: str = "production"
    force: bool = False
    reason: str | None = None


class RollbackBody(BaseModel):
    alias: str = "production"
    force: bool = False
    reason: str | None = None


class RoutesBody(BaseModel):
    routes: list[Route] = Field(default_factory=list)
    shadows: list[int] = Field(default_factory=list)
    clear: bool = False
    force: bool = False
    reason: str | None = None


def _admin(router: APIRouter, board: Dashboard) -> None:
    """Promote, roll back and route from the page: admin tokens only, audited by token name."""
    from mlprod.registry import set_alias

    admin = Depends(board.admin)  # a local alias cannot be an annotation: FastAPI reads them late

    @router.post("/api/admin/models/{name}/promote")
    async def promote(name: str, body: PromoteBody, actor: str = admin) -> dict[str, Any]:
        entry = await run_in_threadpool(
            lambda: set_alias(
                board.store,
                name,
                body.alias,
                body.version,
                artifacts=board.artifacts,
                actor=actor,
                force=body.force,
                reason=body.reason or None,
            )
        )
        return {"done": True, "result": entry.model_dump(mode="json")}

    @router.post("/api/admin/models/{name}/rollback")
    async def roll_back(name: str, body: RollbackBody, actor: str = admin) -> dict[str, Any]:
        entry = await run_in_threadpool(
            lambda: rollback(
                board.store,
                name,
                body.alias,
                artifacts=board.artifacts,
                actor=actor,
                reason=body.reason,
                force=body.force,
            )
        )
        return {"done": True, "result": entry.model_dump(mode="json")}

    @router.post("/api/admin/models/{name}/routes")
    async def routes(name: str, body: RoutesBody, actor: str = admin) -> dict[str, Any]:
        def work() -> Any:
            if body.clear:
                return clear_deployment(board.store, name, actor=actor, reason=body.reason)
            return set_deployment(
                board.store,
                name,
                body.routes,
                body.shadows,
                artifacts=board.artifacts,
                actor=actor,
                reason=body.reason,
                force=body.force,
            ).model_dump(mode="json")

        return {"done": True, "result": await run_in_threadpool(work)}


def _static(router: APIRouter) -> None:
    files = {"app.js": "text/javascript", "style.css": "text/css"}

    @router.get("/static/plotly.min.js")
    def plotly_js() -> FileResponse:
        """plotly.js from the installed plotly package: no CDN, works offline."""
        import plotly

        path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        return FileResponse(
            path, media_type="text/javascript", headers={"cache-control": "public, max-age=86400"}
        )

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in files:  # a fixed list: no path is ever built from the request
            raise NotFoundError(f"no static file {name!r}")
        text = resources.files("mlprod.dashboard").joinpath("static", name).read_text("utf-8")
        return Response(text, media_type=files[name])


def _login(router: APIRouter, board: Dashboard) -> None:
    @router.get("/login", response_class=HTMLResponse)
    def login_page(error: str | None = None) -> str:
        return board.render("login.html.j2", error=error, page="login", name=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        """The sign-in form, parsed by hand: one small field, no multipart parser needed."""
        body = await request.body()
        token = parse_qs(body[:4096].decode("utf-8", "replace")).get("token", [""])[0]
        found = await board.auth.cache.lookup(token.strip()) if token.strip() else None
        if found is None:
            return RedirectResponse("/ui/login?error=unknown+or+revoked+token", status_code=303)
        answer = RedirectResponse("/ui/", status_code=303)
        answer.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", path="/ui")
        return answer


def mount_dashboard(
    app: FastAPI, settings: Settings, store: Store, artifacts: ArtifactStore
) -> None:
    """Add the dashboard under /ui of an existing app (``mlprod serve`` with MLPROD_UI)."""
    app.include_router(dashboard_router(Dashboard(settings, store, artifacts)))


def create_dashboard(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    artifacts: ArtifactStore | None = None,
) -> FastAPI:
    """The dashboard as an app of its own (``mlprod dashboard``); / redirects to /ui/."""
    settings = settings or Settings()
    store = store or Store.open(settings.store_url())
    artifacts = artifacts or open_artifacts(settings)
    app = FastAPI(title="mlprod dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(dashboard_router(Dashboard(settings, store, artifacts)))

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(MlprodError)
    async def mlprod_error(request: Request, exc: MlprodError) -> Response:
        return error_response(request, exc)

    app.add_middleware(CrashLog)  # a 500 without internals, one traceback a kind
    app.add_middleware(HostCheck, allowed=settings.host_names())  # DNS rebinding; page headers
    return app


def error_response(request: Request, exc: MlprodError) -> Response:
    """JSON for API calls, a small page for browsers, a login redirect when reading needs it."""
    if isinstance(exc, UnauthorizedError) and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/ui/login", status_code=303)
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status
    )

"""The REST server: ``create_app`` builds it; nothing happens at import time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from mlprod.errors import LoadingError, MlprodError, SchemaError, StoreError
from mlprod.monitoring import LiveCounter, ingest_outcomes
from mlprod.predlog import PredictionLog, Spool
from mlprod.serving._auth import Authenticator, admin_router, require_scope
from mlprod.serving._crashes import CrashLog, ThrottledLog
from mlprod.serving._direct import DirectPredict
from mlprod.serving._guard import Budget, Guard, GuardState, budget_of
from mlprod.serving._hosts import HostCheck
from mlprod.serving._loaded import LoadedVersion
from mlprod.serving._lookup import FeatureLookups, add_flags
from mlprod.serving._metrics import ServerMetrics
from mlprod.serving._openapi import install_openapi
from mlprod.serving._pool import ModelPool, Served
from mlprod.serving._recorder import Recorder, ShadowScorer
from mlprod.serving._scoring import route_records
from mlprod.serving._trees import TreeCompiler
from mlprod.settings import Settings
from mlprod.store import ArtifactStore, Store, open_artifacts

log = logging.getLogger("mlprod.serving")
INLINE_RECORDS = 1000  # batches up to this score on the event loop; larger ones in a thread
UNKNOWN_MODEL = "(unknown)"  # the one label every name not served here shares in /metrics


class ORJSONResponse(JSONResponse):
    """JSON via orjson: fast, and non-finite floats never reach the encoder."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass
class ServerState:
    """Everything the handlers share, built once by `create_app`."""

    settings: Settings
    pool: ModelPool
    recorder: Recorder
    counter: LiveCounter | None
    features: FeatureLookups
    metrics: ServerMetrics = field(default_factory=ServerMetrics)


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    artifacts: ArtifactStore | None = None,
    alias: str = "production",
) -> FastAPI:
    """A FastAPI app serving every model whose `alias` points at a version (or deployed).

    Example::

        app = create_app(Settings(store="demo/.mlprod"))
        uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    settings = settings or Settings()
    store = store or open_store(settings)
    artifacts = artifacts or open_artifacts(settings)
    trees = TreeCompiler(settings.compiled_dir()) if settings.compile_trees else None
    pool = ModelPool(store, artifacts, alias, trees=trees, verdicts=settings.compiled_dir())
    predlog = PredictionLog(
        store,
        Spool(settings.spool_dir(), max_bytes=settings.spool_max_bytes),
        policy=settings.spool_full,
    )
    counter = (
        LiveCounter(
            store, bucket_seconds=settings.monitor_bucket, flush_seconds=settings.monitor_flush
        )
        if settings.monitor
        else None
    )
    shadows = ShadowScorer(predlog, max_records=settings.max_records, counter=counter)
    recorder = Recorder(predlog, shadows, default_rate=settings.log_sample_rate, counter=counter)
    features = FeatureLookups(settings, pool)
    state = ServerState(settings, pool, recorder, counter, features)
    guard = GuardState()
    state.metrics.watch("pool", pool.stats)
    state.metrics.watch_failures(pool.failures)
    state.metrics.watch("guard", guard.stats)
    state.metrics.watch("predlog", predlog.stats)
    state.metrics.watch("shadows", shadows.stats)
    state.metrics.watch("online", features.stats)
    if trees is not None:
        state.metrics.watch("trees", trees.stats)
    if counter is not None:
        state.metrics.watch("monitor", counter.stats_for_metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # loaded, verified, warmed up before serving; a store that is down is retried by
        # the pool's watcher while /healthz answers and /readyz says why it is not ready
        if not await run_in_threadpool(pool.first_load):
            log.error("cannot reach the store at start; retrying: %s", pool.status()["store"])
        predlog.start()
        shadows.start()
        if counter is not None:
            counter.start()
        pool.start(settings.poll_interval)
        features.start()
        try:
            yield
        finally:  # within what is left of the grace period; the spool keeps what is not flushed
            left = guard.time_left
            await features.stop()
            pool.stop(timeout=min(left(5.0), 5.0))
            if trees is not None:
                trees.stop()
            shadows.stop(timeout=min(left(5.0) / 4, 5.0))
            if counter is not None:
                counter.stop(timeout=min(left(5.0) / 3, 5.0))
            predlog.stop(timeout=max(left(settings.grace_period + 1.0) - 1.5, 0.1))

    app = FastAPI(
        title="mlprod", version="1", default_response_class=ORJSONResponse, lifespan=lifespan
    )
    app.state.mlprod = state
    app.state.pool = pool
    app.state.guard = guard
    app.state.auth = Authenticator(
        store, predict_open=settings.opens("predict"), outcomes_open=settings.opens("outcomes")
    )
    app.include_router(admin_router())
    predict_route = _routes(app, state)
    throttled = ThrottledLog()
    failed = _error_handlers(app, state, throttled)
    install_openapi(app, pool)
    app.add_middleware(  # innermost: inside the guard, the crash log and the Host check
        DirectPredict,
        answer=partial(_predict, state),
        failed=failed,
        auth=app.state.auth,
        route=predict_route,
    )
    app.add_middleware(  # limits apply before the app; only the checks below wrap it
        Guard,
        max_body_bytes=settings.max_body_bytes,
        max_concurrency=settings.max_concurrency,
        request_timeout=settings.request_timeout,
        queue_timeout=settings.queue_timeout,
        budgets={"/v1/outcomes": (settings.write_timeout, "MLPROD_WRITE_TIMEOUT")},
        state=guard,
    )
    crashed = partial(_count_crash, state)
    app.add_middleware(CrashLog, log=throttled, on_crash=crashed)  # a 500, one traceback a kind
    app.add_middleware(HostCheck, allowed=settings.host_names())  # outermost: DNS rebinding
    return app


def open_store(settings: Settings) -> Store:
    """The store, or, when its database does not answer yet, one to connect to later.

    An orchestrator restarts a server that exits, so a database incident would become a
    crash loop; the pool retries instead (`ModelPool.first_load`).
    """
    try:
        return Store.open(settings.store_url())
    except StoreError as exc:
        log.error("the store does not answer yet; starting without it: %s", exc)
        return Store.open_later(settings.store_url())


def _routes(app: FastAPI, state: ServerState) -> APIRoute:
    """Every route; returns the predict route, which `DirectPredict` answers while open."""
    pool, max_records = state.pool, state.settings.max_records

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> Response:
        status = pool.status()
        return ORJSONResponse(status, status_code=200 if status["ready"] else 503)

    @app.get("/metrics", tags=["health"])
    def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", tags=["models"])
    def list_models() -> dict[str, Any]:
        return {"models": pool.describe()}

    predict_scope = [Depends(require_scope("predict"))]

    @app.post("/v1/models/{name}/predict", tags=["models"], dependencies=predict_scope)
    async def predict(name: str, request: Request) -> Response:
        return await _predict(state, name, await request.body(), request.scope)

    outcomes_scope = [Depends(require_scope("outcomes"))]

    @app.post("/v1/outcomes", tags=["monitoring"], dependencies=outcomes_scope)
    async def outcomes(request: Request) -> dict[str, int]:
        """Observed labels, by prediction id or by entity and time; matched within seconds."""
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise SchemaError(f"the body is not valid JSON: {exc}") from None
        items = payload.get("outcomes") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            raise SchemaError(
                'the body must be {"outcomes": [{"prediction_id": ..., "label": ...}, ...]}',
                fields=[{"field": "outcomes", "expected": "a non-empty list of objects"}],
            )
        model = payload.get("model")
        if model is not None and not isinstance(model, str):
            raise SchemaError("model must be a model name", fields=[{"field": "model"}])
        return await run_in_threadpool(ingest_outcomes, pool.store, items, model=model)

    @app.post("/v1/events", tags=["features"], dependencies=[Depends(require_scope("admin"))])
    async def events(request: Request) -> dict[str, Any]:
        """Live events for the online feature store; they count within a second."""
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise SchemaError(f"the body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise SchemaError('the body must be {"source": ..., "events": [...]}')
        source, items = payload.get("source"), payload.get("events")
        return await run_in_threadpool(state.features.ingest, source, items)

    @app.post(
        "/v1/models/{name}/versions/{version}/predict", tags=["models"], dependencies=predict_scope
    )
    async def predict_version(name: str, version: int, request: Request) -> Response:
        budget = budget_of(request.scope)
        model = await _pinned(pool, name, version, budget)
        body = await request.body()
        return await _answer(state, model, body, max_records, budget)

    return next(r for r in app.routes if isinstance(r, APIRoute) and r.endpoint is predict)


LOADING_MARGIN = 0.1  # seconds of a request's budget kept to answer "loading" in time


async def _pinned(pool: ModelPool, name: str, version: int, budget: Budget | None) -> LoadedVersion:
    """The version, once loaded; `LoadingError` (503, retry) if its load outlasts the budget.

    The load carries on either way, so the client's retry finds it ready.
    """
    if not pool.is_loaded(name, version):
        await run_in_threadpool(pool.check_pinned, name, version)  # unknown: a 404 now
    future = pool.pinned_later(name, version)
    if future.done():
        return future.result()
    waiting = asyncio.wrap_future(future)
    waiting.add_done_callback(_retrieve)  # a load that fails after we gave up is not "unretrieved"
    wait = None if budget is None else budget.deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(
            asyncio.shield(waiting), None if wait is None else max(wait - LOADING_MARGIN, 0.0)
        )
    except TimeoutError:
        raise LoadingError(
            f"{name}@{version} is still loading (it is verified and warmed up before it "
            "answers); retry in a second"
        ) from None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _predict(state: ServerState, name: str, body: bytes, scope: Scope) -> Response:
    """``POST /v1/models/{name}/predict``, from FastAPI's route or from `DirectPredict`."""
    served = state.pool.served(name)
    return await _answer(state, served, body, state.settings.max_records, budget_of(scope))


async def _answer(
    state: ServerState,
    target: LoadedVersion | Served,
    body: bytes,
    max_records: int,
    budget: Budget | None = None,
) -> Response:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"the body is not valid JSON: {exc}") from None
    records = payload.get("records") if isinstance(payload, dict) else None
    records, flags = await state.features.merge(target, records)
    if flags is not None:
        body = b""  # the log keeps the records as scored, aggregates included
    small = not isinstance(records, list) or len(records) <= INLINE_RECORDS
    if small:
        content, seconds = respond(state, target, records, max_records, body, budget)
    else:
        content, seconds = await run_in_threadpool(
            respond, state, target, records, max_records, body, budget
        )
    add_flags(content["predictions"], flags)
    _count(state.metrics, target, content, seconds)
    return ORJSONResponse(content)


def respond(
    state: ServerState,
    target: LoadedVersion | Served,
    records: Any,
    max_records: int,
    body: bytes,
    budget: Budget | None = None,
) -> tuple[dict[str, Any], float]:
    """Score the records, then spool their log rows: the answer goes out once they are safe.

    `body` is the request as it came: the log takes the records from it as they are; an
    empty one means the records changed since (aggregates merged in) and are logged as scored.
    Nothing is logged when the guard answered 504 meanwhile (`budget`): that client never
    got these predictions.
    """
    started = time.perf_counter()
    content = route_records(target, records, max_records)
    seconds = time.perf_counter() - started
    if budget is None or budget.claim_answer():
        state.recorder.record(target, records, content["predictions"], seconds * 1e3, body or None)
    return content, seconds


def _count(
    metrics: ServerMetrics,
    target: LoadedVersion | Served,
    content: dict[str, Any],
    seconds: float,
) -> None:
    """Records answered per version, and the request's time under its first one's."""
    model, predictions = content["model"], content["predictions"]
    first = predictions[0]["version"]
    if isinstance(target, LoadedVersion) or len(target.routes) == 1:  # one version answers
        metrics.scored(model, first, len(predictions))
    else:
        for version, records in Counter(p["version"] for p in predictions).items():
            metrics.scored(model, version, records)
    metrics.timed(model, first, seconds)


def _error_handlers(
    app: FastAPI, state: ServerState, throttled: ThrottledLog
) -> Callable[[str, str, Mapping[str, Any], MlprodError], Response]:
    """Install the `MlprodError` handler; return its renderer for `DirectPredict`."""
    failed = partial(_error_response, state, throttled)

    @app.exception_handler(MlprodError)
    async def mlprod_error(request: Request, exc: MlprodError) -> Response:
        return failed(request.method, request.url.path, request.path_params, exc)

    return failed


def _error_response(
    state: ServerState,
    throttled: ThrottledLog,
    method: str,
    path: str,
    path_params: Mapping[str, Any],
    exc: MlprodError,
) -> Response:
    """One error body for every route, counted per model and code."""
    model = _model_label(state.pool, path_params)
    state.metrics.errors.labels(model, exc.code).inc()
    if state.counter is not None and model not in ("-", UNKNOWN_MODEL):
        state.counter.error(model, exc.code)
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, SchemaError) and exc.fields:
        error["fields"] = exc.fields
    if exc.status >= 500:
        where = f"{method} {path}"
        throttled.error(f"{where} {exc.code}", f"{where} failed: {exc.detail or exc}")
    headers = getattr(exc, "headers", None)  # 401 carries WWW-Authenticate
    return ORJSONResponse({"error": error}, status_code=exc.status, headers=headers)


def _model_label(pool: ModelPool, path_params: Mapping[str, Any]) -> str:
    """The model a failed request named, if this server knows it; else one shared label."""
    name = path_params.get("name")
    if name is None:
        return "-"
    return str(name) if pool.knows(str(name)) else UNKNOWN_MODEL


def _count_crash(state: ServerState, scope: Mapping[str, Any]) -> None:
    model = _model_label(state.pool, scope.get("path_params", {}))
    state.metrics.errors.labels(model, "internal").inc()

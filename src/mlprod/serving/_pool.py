"""The models a server holds, kept in step with the registry without a restart.

The pool builds a routing table from the store: each model's weighted routes and
shadows (its deployment) or, without one, the version behind the served alias. A
watcher thread polls the audit log's newest id; on a change it loads new versions
beside the old ones (verified and warmed up), swaps the table in one assignment, then
lets the old versions go. A version that fails to load is marked failed and whatever
served before keeps serving; every other model serves as usual, and the failure shows in
/readyz, /metrics and as an open ``serving`` alert until the version loads or is unrouted.

A store that does not answer at start is retried with backoff (`RETRY_FIRST` doubling
up to `RETRY_MAX` seconds): the server runs, /healthz answers, /readyz says why it is not
ready, and the models load once the store is back.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mlprod.errors import MlprodError, NotFoundError, StoreError
from mlprod.monitoring import close_alerts, list_alerts, raise_alert
from mlprod.registry import (
    Deployment,
    Route,
    change_marker,
    get_version,
    list_deployments,
    open_version,
    versions_with_alias,
)
from mlprod.serving._loaded import LoadedVersion
from mlprod.serving._trees import TreeCompiler
from mlprod.store import ArtifactStore, Store

log = logging.getLogger("mlprod.serving")

RETRY_FIRST = 0.5  # seconds before the first retry of a store that was down at start
RETRY_MAX = 5.0  # ... doubling up to this


@dataclass(frozen=True)
class Served:
    """One model's live routes (with cumulative weights) and shadows."""

    name: str
    routes: tuple[LoadedVersion, ...]
    weights: tuple[float, ...]
    shadows: tuple[LoadedVersion, ...] = ()
    log_sample_rate: float | None = None  # None: the server's default
    cumulative: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        total = sum(self.weights)
        running, cumulative = 0.0, []
        for weight in self.weights:
            running += weight / total
            cumulative.append(running)
        object.__setattr__(self, "cumulative", tuple(cumulative))

    def choose(self, key: object | None) -> LoadedVersion:
        """The version for one request: sticky by entity key, else a weighted draw."""
        if len(self.routes) == 1:
            return self.routes[0]
        point = stable_fraction(self.name, key) if key is not None else random.random()
        index = min(bisect.bisect_right(self.cumulative, point), len(self.routes) - 1)
        return self.routes[index]


def stable_fraction(model: str, key: object) -> float:
    """A number in [0, 1) fixed by (model, key): the same entity always lands the same."""
    digest = hashlib.blake2b(f"{model}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


FAILED_FOR = 5.0  # seconds a pinned version's failed load answers before it is tried again


def _stale(pending: tuple[Future[Any], float]) -> bool:
    return time.monotonic() >= pending[1]


class ModelPool:
    """Loads each routed version once, verified and warmed up; pinned versions on demand."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        alias: str = "production",
        *,
        trees: TreeCompiler | None = None,
        verdicts: Path | None = None,
    ) -> None:
        self.store = store
        self.verdicts = verdicts  # where each load's fast-path verdict is remembered
        self.artifacts = artifacts
        self.alias = alias
        self.trees = trees  # compiles LightGBM versions in the background, when installed
        self._table: dict[str, Served] = {}
        self._loaded: dict[tuple[str, int], LoadedVersion] = {}
        self._failed: dict[tuple[str, int], str] = {}
        self._missing: set[str] = set()
        self._marker = -1
        self._unreachable: str | None = "not read yet"  # why the registry was never read
        self._lock = threading.Lock()
        # pinned versions loading (or failed, until a time): one loader thread, as every
        # load takes `_lock` anyway, and a client sweeping version numbers adds no threads
        self._pending: dict[tuple[str, int], tuple[Future[LoadedVersion], float]] = {}
        self._pending_lock = threading.Lock()
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="mlprod-pinned")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- building the table

    def first_load(self) -> bool:
        """Bring the schema to head and load the table; False while the store is unreachable.

        The reason stays in `status()` for /readyz, and the watcher retries with backoff.
        """
        try:
            self.store.upgrade()
            self.load_all()
        except StoreError as exc:
            self._unreachable = str(exc)
            return False
        self._unreachable = None
        return True

    def load_all(self) -> None:
        """Bring the table in line with the registry (idempotent; cheap when unchanged)."""
        with self._lock:
            marker = change_marker(self.store)
            wanted = self._wanted()
            table: dict[str, Served] = {}
            missing: set[str] = set()
            for name, deployment in wanted.items():
                served = self._build(name, deployment)
                if served is not None:
                    table[name] = served
                elif name in self._table:
                    table[name] = self._table[name]  # the previous routes keep serving
                else:
                    missing.add(name)
            self._table, self._missing, self._marker = table, missing, marker
            keep = {(m.name, m.version) for s in table.values() for m in (*s.routes, *s.shadows)}
            self._loaded = {key: m for key, m in self._loaded.items() if key in keep}
            routed = {(n, r.version) for n, d in wanted.items() for r in d.routes}
            routed |= {(n, v) for n, d in wanted.items() for v in d.shadows}
            failed = {key: error for key, error in self._failed.items() if key in routed}
        self._report_failures(set(wanted), failed)

    def _report_failures(self, models: set[str], failed: dict[tuple[str, int], str]) -> None:
        """One open ``serving`` alert per routed version that fails to load; the rest close.

        Reads first and writes only what changed: every replica runs this on every change.
        """
        try:
            for (name, version), error in failed.items():
                raise_alert(
                    self.store, name, "serving", f"version {version}", version=version,
                    message=f"{name}@{version} cannot be served: {error}",
                    details={"version": version, "error": error},
                )  # fmt: skip
            open_now = list_alerts(self.store, open_only=True, limit=10_000)
            for name in {a.model for a in open_now if a.kind == "serving"} & models:
                still = {f"version {v}" for (n, v) in failed if n == name}
                close_alerts(self.store, name, "serving", still_failing=still)
        except StoreError as exc:
            log.warning("could not record the serving alerts: %s", exc)

    def _wanted(self) -> dict[str, Deployment]:
        """Each model's deployment; an alias alone counts as one route with all the traffic."""
        wanted = {
            record.model: Deployment(
                model=record.model, routes=[Route(version=record.version, weight=1.0)]
            )
            for record in versions_with_alias(self.store, self.alias)
        }
        wanted.update({d.model: d for d in list_deployments(self.store)})
        return wanted

    def _build(self, name: str, deployment: Deployment) -> Served | None:
        routes = deployment.routes
        try:
            models = [self._load(name, route.version) for route in routes]
            shadow_models = [self._load(name, version) for version in deployment.shadows]
        except MlprodError as exc:
            log.error("cannot serve %s with routes %s: %s", name, deployment.describe(), exc)
            return None
        weights = tuple(route.weight for route in routes)
        rate = deployment.log_sample_rate
        return Served(name, tuple(models), weights, tuple(shadow_models), rate)

    def _load(self, name: str, version: int) -> LoadedVersion:
        key = (name, version)
        if key in self._loaded:
            return self._loaded[key]
        record = get_version(self.store, name, version)  # unknown: 404, and no trace here
        try:
            loaded = LoadedVersion.prepare(open_version(self.artifacts, record), self.verdicts)
        except MlprodError as exc:
            self._failed[key] = str(exc)
            raise
        if self.trees is not None:
            self.trees.submit(loaded)  # the booster serves until compiled trees pass too
        self._failed.pop(key, None)
        self._loaded[key] = loaded
        return loaded

    # --- watching the registry

    def start(self, interval: float) -> None:
        """Poll the registry every `interval` seconds in a daemon thread."""
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._watch, args=(interval,), daemon=True, name="mlprod-pool"
        )
        self._watcher.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._loader.shutdown(wait=False, cancel_futures=True)
        if self._watcher is not None:
            self._watcher.join(timeout=timeout)

    def _watch(self, interval: float) -> None:
        delay = RETRY_FIRST
        while self._unreachable is not None:
            if self._stop.wait(delay * random.uniform(0.8, 1.2)):
                return
            started = time.monotonic()
            if self.first_load():
                log.warning("the store answers again: serving %s", sorted(self._table) or "nothing")
                break
            log.warning(
                "the store is still unreachable (%.1f s); retrying in %.1f s: %s",
                time.monotonic() - started, min(delay * 2, RETRY_MAX), self._unreachable,
            )  # fmt: skip
            delay = min(delay * 2, RETRY_MAX)
        while not self._stop.wait(interval):
            try:
                if change_marker(self.store) != self._marker:
                    self.load_all()
            except StoreError as exc:
                log.warning("registry unreachable, serving what is loaded: %s", exc)

    # --- serving

    @property
    def ready(self) -> bool:
        """Ready with the registry read and at least one model served.

        A model whose routed version is broken does not make the server unready: taking
        every replica out of rotation would stop every other model too. It shows in
        `status()`, in /metrics and as an alert instead.
        """
        return self._unreachable is None and bool(self._table)

    def served(self, name: str) -> Served:
        """The live routes of `name`."""
        served = self._table.get(name)
        if served is None:
            known = ", ".join(sorted(self._table)) or "none"
            raise NotFoundError(
                f"model {name!r} is not served here (served: {known}); "
                f"promote a version with `mlprod promote {name} VERSION --alias {self.alias}`"
            )
        return served

    def knows(self, name: str) -> bool:
        """Whether `name` is served or has a version loaded here: metrics label only these,
        so a client sending random names cannot grow a label set or the store."""
        return name in self._table or any(key[0] == name for key in list(self._loaded))

    def table(self) -> dict[str, Served]:
        """The current routing table (a snapshot: it is replaced, never mutated)."""
        return self._table

    def pinned(self, name: str, version: int) -> LoadedVersion:
        """A specific version, loaded from the registry on first use."""
        with self._lock:
            return self._load(name, version)

    def pinned_later(self, name: str, version: int) -> Future[LoadedVersion]:
        """`pinned` as a future: done at once when the version is loaded, else loading on
        the pool's loader thread, one load per version however many requests ask meanwhile.

        Why: a load (verify, warm up, check the fast path) can outlast a request's time
        budget; the request can then say "loading, retry" while the load carries on. Call
        `check_pinned` first (it queries the store): an unknown version is a 404 at once,
        not a load. A failed load's error answers for `FAILED_FOR` seconds, then the next
        request tries again.
        """
        key = (name, version)
        loaded = self._loaded.get(key)
        if loaded is not None:
            done: Future[LoadedVersion] = Future()
            done.set_result(loaded)
            return done
        with self._pending_lock:
            pending = self._pending.get(key)
            if pending is not None and not _stale(pending):
                return pending[0]
            future = self._loader.submit(self.pinned, name, version)
            self._pending[key] = (future, float("inf"))
        future.add_done_callback(partial(self._settled, key))
        return future

    def is_loaded(self, name: str, version: int) -> bool:
        return (name, version) in self._loaded

    def check_pinned(self, name: str, version: int) -> None:
        """`NotFoundError` unless the registry holds `name`@`version` (cheap once loaded)."""
        if (name, version) not in self._loaded:
            get_version(self.store, name, version)

    def _settled(self, key: tuple[str, int], future: Future[LoadedVersion]) -> None:
        with self._pending_lock:
            if self._pending.get(key, (None, 0.0))[0] is not future:
                return
            if future.exception() is None:
                del self._pending[key]  # loaded: `_loaded` answers from now on
            else:
                self._pending[key] = (future, time.monotonic() + FAILED_FOR)

    def describe(self) -> list[dict[str, Any]]:
        """One entry per served model, for ``GET /v1/models``.

        ``classes`` are the labels it answers; a multiclass model has no threshold (its
        label is the most probable class), so ``threshold`` is null for it.
        """
        return [
            {
                "name": name,
                "version": served.routes[0].version,
                "alias": self.alias,
                "routes": [
                    {
                        "version": m.version,
                        "weight": w,
                        "serving_path": m.path,
                        "scorer": m.scorer_name,
                        "scored": m.scored,
                    }
                    for m, w in zip(served.routes, served.weights, strict=True)
                ],
                "shadows": [m.version for m in served.shadows],
                "flavor": served.routes[0].model.flavor,
                "threshold": None if served.routes[0].multiclass else served.routes[0].threshold,
                "classes": served.routes[0].classes,
                "fields": [
                    {"name": f["name"], "kind": f["kind"]}
                    for f in served.routes[0].signature["fields"]
                ],
            }
            for name, served in sorted(self._table.items())
        ]

    def stats(self) -> dict[str, float]:
        """Counts for /metrics."""
        return {"versions_loaded": len(self._loaded), "versions_failed": len(self._failed),
                "models_served": len(self._table), "ready": float(self.ready)}  # fmt: skip

    def status(self) -> dict[str, Any]:
        """What /readyz reports."""
        return {
            "ready": self.ready,
            "models": {name: s.routes[0].version for name, s in sorted(self._table.items())},
            "failed": {
                f"{name}@{version}": error
                for (name, version), error in sorted(self._failed.items())
            },
            "missing": sorted(self._missing),
            **({"store": self._unreachable} if self._unreachable else {}),
        }

    def failures(self) -> list[tuple[str, int]]:
        """The routed versions that failed to load, for /metrics."""
        return sorted(self._failed)

"""Shared fixtures: a seeded RNG, real SQLite and real PostgreSQL stores, a trained project.

Service-backed tests skip with a reason when the service is absent, except under
CI=true, where a missing service is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlprod.store import Store
from support import (
    REDIS_URL,
    PrivateRedis,
    Project,
    Server,
    drop_prefix,
    need_redis,
    need_service,
    write_project,
)

# OpenMP threads (HistGradientBoosting, LightGBM, XGBoost) spin while they wait for work by
# default. Two workers, their servers and trainers share two cores here, and spinning teams
# starve one another: a 300-row HistGradientBoosting fit took 61 s instead of 0.4 s. Set
# before any of them loads, so this process and every one it starts inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Compiling a LightGBM forest costs seconds of CPU per model; servers in tests start by the
# dozen, so they score on the booster unless a test (tests/serving/test_trees.py) opts in.
os.environ.setdefault("MLPROD_COMPILE_TREES", "false")

PG_ADMIN_URL = os.environ.get(
    "MLPROD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most `slow` tests run first, each file's own order kept.

    The workers take whole files (``--dist loadfile``) in collection order. Alphabetical
    order left the server suites, the longest files, for last, and one worker ran its
    last minutes alone; started first, they are overlapped by the short files.
    """
    slow: dict[Path, int] = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: files stay whole and in order


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: tests never touch global random state."""
    return np.random.default_rng(20261122)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    try:
        admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        need_service("PostgreSQL", f"cannot connect to {PG_ADMIN_URL}: {exc}")
    name = f"mlprod_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store contract test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlprod.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store, on SQLite and on PostgreSQL (see `store_url`)."""
    with Store.open(store_url) as opened:
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """An open SQLite store, for tests whose subject is not the backend."""
    with Store.open(f"sqlite:///{tmp_path / 'mlprod.db'}") as opened:
        yield opened


# --- a small trained project and a real server, shared by workflow, CLI and serving tests


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """churn@1 trained on 3,000 rows and promoted to production."""
    from mlprod.pipelines import promote, train

    project = write_project(tmp_path_factory.mktemp("project"))
    run = train(project.spec, store=project.store)
    promote("churn", run.version, "production", store=project.store, actor="fixture")
    return project


@pytest.fixture(scope="session")
def server(trained_project: Project) -> Iterator[Server]:
    """`mlprod serve` over the trained project, on a free port."""
    running = Server(trained_project)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def closed_server(trained_project: Project) -> Iterator[Server]:
    """`mlprod serve` with predictions closed to callers without a token (one per module:
    the tests create and revoke tokens)."""
    running = Server(trained_project, env={"MLPROD_PREDICT_OPEN": "false"})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


# --- Redis: a per-test prefix on the shared instance, or a private instance to stop


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis, emptied afterwards."""
    need_redis()
    prefix = f"mlprodtest{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        drop_prefix(REDIS_URL, prefix)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test's own on a free port (outage tests stop this one)."""
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """A local[2] Spark session for one test module (skips, or fails under CI, without Spark)."""
    from mlprod.data import spark_available, spark_session

    missing = spark_available()
    if missing is not None:
        need_service("Spark", missing)
    session = spark_session("local[2]")
    try:
        yield session
    finally:
        session.stop()

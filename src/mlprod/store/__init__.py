"""The store: the metadata database and its transactions, schema and migrations; artifacts.

Everything mlprod records lives in one SQL database (SQLite by default, PostgreSQL for a
team) and bundles live in an artifact store beside it. The packages that own the data
(registry, monitoring, predlog, ...) read and write the tables in `schema` through
`Store.read` and `Store.write`.

Example::

    with Store.from_settings(Settings()) as store:
        store.read(lambda conn: conn.execute(sa.select(schema.models.c.name)).scalars().all())

The Redis client library loads only when a Redis is asked for (`redis_client`,
`RedisArtifacts`), and Alembic only when a schema needs migrating.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlprod.store import schema
from mlprod.store._artifacts import ArtifactStore, LocalArtifacts, open_artifacts, safe_join
from mlprod.store._engine import hide_password, json_dumps, plain_json
from mlprod.store._redis import check_redis_url, redis_client, redis_problem, shown_url
from mlprod.store._store import MetadataStore, Store, row_exists

if TYPE_CHECKING:
    from mlprod.store._redis_artifacts import RedisArtifacts

__all__ = [
    "ArtifactStore",
    "LocalArtifacts",
    "MetadataStore",
    "RedisArtifacts",
    "Store",
    "check_redis_url",
    "hide_password",
    "json_dumps",
    "open_artifacts",
    "plain_json",
    "redis_client",
    "redis_problem",
    "row_exists",
    "safe_join",
    "schema",
    "shown_url",
]


def __getattr__(name: str) -> Any:
    if name == "RedisArtifacts":
        return importlib.import_module("mlprod.store._redis_artifacts").RedisArtifacts
    raise AttributeError(f"module 'mlprod.store' has no attribute {name!r}")

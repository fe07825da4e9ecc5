"""The datamart: a source's rows kept in Redis as compressed Arrow IPC, with a time to live.

A team's slow warehouse query runs once (``mlprod data cache``); ``mlprod train``, tuning
workers and notebooks then read the same rows from Redis while the entry is fresh. An
entry is addressed by what it holds: a file by its resolved path, size and modification
time (a changed file is a new entry), a query by its database URL (without password)
and text. Values over `PART_BYTES` are split; a part lost to eviction makes the entry a
miss, never a partial table.

Example::

    cache = DataCache.open("redis://127.0.0.1:6379/0")
    cache.put("customers.csv", ttl=3600)
    cache.get("customers.csv")          # the rows, or None once expired
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from mlprod._time import utc_now
from mlprod.data._sources import Source, as_sql, load_frame, safe_url
from mlprod.errors import DataError
from mlprod.spec import EventQuery, SqlSource, SqlTable
from mlprod.store import redis_client, redis_problem

if TYPE_CHECKING:
    import redis

PART_BYTES = 64 * 1024 * 1024
DEFAULT_TTL = 3600


@dataclass(frozen=True)
class CacheEntry:
    """One cached source: how many rows, how many compressed bytes, until when."""

    key: str
    rows: int
    bytes: int
    expires_at: datetime
    seconds: float = 0.0


def source_identity(source: Source) -> str:
    """What a cache entry is addressed by; files include their size and modification time."""
    if isinstance(source, SqlSource | SqlTable | EventQuery):
        sql = as_sql(source)
        return f"sql\0{safe_url(sql.url)}\0{sql.query}"
    path = Path(source).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(f"cannot cache {str(path)!r}: {exc.strerror}") from None
    return f"file\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}"


def to_ipc(frame: pd.DataFrame) -> bytes:
    """`frame` as an Arrow IPC stream, zstd-compressed."""
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"cannot cache these rows as Arrow: {exc}") from None
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


def from_ipc(data: bytes) -> pd.DataFrame:
    """The rows of an Arrow IPC stream."""
    frame: pd.DataFrame = pa.ipc.open_stream(data).read_all().to_pandas()
    return frame


def _redis_error() -> type[Exception]:
    """Redis' base error. Imported once a cache is in use: most runs have no cache and
    should not pay for importing the client library."""
    import redis

    return redis.RedisError


class DataCache:
    """Source rows in Redis under ``<prefix>:dm:<sha256 of the source>``."""

    def __init__(self, client: redis.Redis, *, url: str = "", prefix: str = "mlprod") -> None:
        self.client = client
        self.url = url
        self.prefix = prefix

    @classmethod
    def open(cls, url: str, *, prefix: str = "mlprod", timeout: float = 30.0) -> DataCache:
        """The cache in the Redis at `url` (``MLPROD_CACHE``)."""
        return cls(redis_client(url, what="MLPROD_CACHE", timeout=timeout, max_connections=4),
                   url=url, prefix=prefix)  # fmt: skip

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()

    def key(self, source: Source) -> str:
        digest = hashlib.sha256(source_identity(source).encode()).hexdigest()
        return f"{self.prefix}:dm:{digest}"

    def put(
        self, source: Source, *, ttl: int = DEFAULT_TTL, frame: pd.DataFrame | None = None
    ) -> CacheEntry:
        """Read `source` (unless `frame` is given) and keep its rows for `ttl` seconds."""
        started = time.perf_counter()
        rows = load_frame(source) if frame is None else frame
        data = to_ipc(rows)
        key = self.key(source)
        parts = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
        try:
            with self.client.pipeline(transaction=True) as pipe:
                for number, part in enumerate(parts):
                    pipe.set(f"{key}:{number}", part, ex=ttl)
                pipe.delete(key)
                pipe.hset(key, mapping={"rows": len(rows), "parts": len(parts), "bytes": len(data)})
                pipe.expire(key, ttl)
                pipe.execute()
        except _redis_error() as exc:
            raise DataError(f"cannot cache the rows: {redis_problem(exc, self.url)}") from None
        expires = utc_now() + timedelta(seconds=ttl)
        return CacheEntry(key, len(rows), len(data), expires, time.perf_counter() - started)

    def get(self, source: Source) -> pd.DataFrame | None:
        """The cached rows of `source`, or None when there are none (or they expired)."""
        key = self.key(source)
        try:
            meta = self.client.hgetall(key)
            if not meta:
                return None
            count = int(meta[b"parts"])
            parts = self.client.mget([f"{key}:{n}" for n in range(count)])
        except _redis_error() as exc:
            raise DataError(f"cannot read the cache: {redis_problem(exc, self.url)}") from None
        if any(part is None for part in parts):
            return None  # a part expired or was evicted: a miss, never half a table
        return from_ipc(b"".join(part for part in parts if isinstance(part, bytes)))

    def info(self, source: Source) -> CacheEntry | None:
        """The entry for `source` without reading its rows, or None."""
        key = self.key(source)
        try:
            meta = self.client.hgetall(key)
            ttl = self.client.ttl(key)
        except _redis_error() as exc:
            raise DataError(f"cannot read the cache: {redis_problem(exc, self.url)}") from None
        if not meta:
            return None
        expires = utc_now() + timedelta(seconds=max(int(ttl), 0))
        return CacheEntry(key, int(meta[b"rows"]), int(meta[b"bytes"]), expires)


def read_source(
    source: Source, *, cache: DataCache | None = None, allow_empty: bool = False
) -> pd.DataFrame:
    """The rows of `source`: from the datamart while an entry is fresh, else from the source.

    Example::

        frame = read_source(spec.data.source, cache=DataCache.open(settings.cache))
    """
    if cache is not None:
        cached = cache.get(source)
        if cached is not None:
            return cached
    return load_frame(source, allow_empty=allow_empty)

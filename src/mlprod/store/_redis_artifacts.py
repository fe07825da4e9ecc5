"""Bundles in Redis, by content hash: hosts with no shared disk serve the same versions.

`put_dir` stores a folder's files in one Redis hash under the sha256 of its file list
and their digests (the same bundle stored twice is one entry); `path` gives a local
folder, fetched once per host into `cache_dir` and checked against that hash every time
it is asked for, so a copy altered on disk is fetched again rather than served. Loading
a model then verifies the manifest's hashes as it does for local folders.

Keep bundles in a Redis that does not evict (``maxmemory-policy noeviction``): an evicted
bundle can no longer reach a new host (hosts that fetched it keep their copy).

Example::

    artifacts = RedisArtifacts.open("redis://127.0.0.1:6379/0", cache_dir=".mlprod/bundles")
    bundle_id = artifacts.put_dir(Path("build/bundle"))
    Model.open(artifacts.path(bundle_id))
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import redis

from mlprod.errors import IntegrityError, NotFoundError, StoreError
from mlprod.store._artifacts import safe_join
from mlprod.store._redis import redis_client, redis_problem

_CONTENT_ID = re.compile(r"[0-9a-f]{64}")
INDEX = "__index__"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_id(index: dict[str, str]) -> str:
    """The bundle's id: the sha256 of its sorted (path, sha256) list."""
    return _digest(json.dumps(sorted(index.items())).encode())


def _files(source: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_symlink():
            raise IntegrityError(
                f"cannot store {source}: {path} is a symlink; bundles hold regular files only"
            )
        if path.is_file():
            found[path.relative_to(source).as_posix()] = path.read_bytes()
    return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


class RedisArtifacts:
    """An `ArtifactStore` in Redis (``MLPROD_ARTIFACTS=redis://...``), local copies per host."""

    def __init__(
        self, client: redis.Redis, cache_dir: str | Path, *, url: str = "", prefix: str = "mlprod"
    ) -> None:
        self.client = client
        self.cache_dir = Path(cache_dir)
        self.url = url
        self.prefix = prefix

    @classmethod
    def open(cls, url: str, *, cache_dir: str | Path, prefix: str = "mlprod") -> RedisArtifacts:
        client = redis_client(url, what="MLPROD_ARTIFACTS", timeout=30.0, max_connections=4)
        return cls(client, cache_dir, url=url, prefix=prefix)

    def close(self) -> None:
        """Close the pooled connections."""
        self.client.close()
        self.client.connection_pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisArtifacts({self.url!r}, cache_dir={str(self.cache_dir)!r})"

    def key(self, artifact_id: str) -> str:
        return f"{self.prefix}:bundle:{artifact_id}"

    def _failure(self, exc: redis.RedisError) -> StoreError:
        return StoreError(f"the artifact store failed: {redis_problem(exc, self.url)}")

    def put_dir(self, source: Path) -> str:
        """Store the folder `source`; returns its content id (the same bundle, the same id)."""
        source = Path(source)
        if not source.is_dir():
            raise NotFoundError(f"cannot store {source}: it is not a folder")
        files = _files(source)
        index = {name: _digest(data) for name, data in files.items()}
        artifact_id = content_id(index)
        key = self.key(artifact_id)
        try:
            if not self.client.exists(key):
                with self.client.pipeline(transaction=True) as pipe:  # all files or none
                    mapping: dict[str, bytes | str] = {INDEX: json.dumps(index), **files}
                    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]  # redis-py's key type
                    pipe.execute()
        except redis.RedisError as exc:
            raise self._failure(exc) from exc
        return artifact_id

    def path(self, artifact_id: str) -> Path:
        """A verified local folder holding the bundle, fetched from Redis on first use."""
        if not isinstance(artifact_id, str) or not _CONTENT_ID.fullmatch(artifact_id):
            raise NotFoundError(
                f"no artifact {artifact_id!r}: Redis artifact ids are 64 lowercase hex digits"
            )
        folder = safe_join(self.cache_dir, "bundles", artifact_id)
        if folder.is_dir() and self._local_id(folder) == artifact_id:
            return folder
        return self._fetch(artifact_id, folder)

    def _local_id(self, folder: Path) -> str | None:
        try:
            files = _files(folder)
        except (OSError, IntegrityError):
            return None
        return content_id({name: _digest(data) for name, data in files.items()})

    def _fetch(self, artifact_id: str, folder: Path) -> Path:
        try:
            stored = self.client.hgetall(self.key(artifact_id))
        except redis.RedisError as exc:
            raise self._failure(exc) from exc
        if not stored:
            raise NotFoundError(
                f"no artifact {artifact_id} in Redis at {self.url}: check MLPROD_ARTIFACTS "
                "names the Redis the bundles were stored in (and that it does not evict keys)"
            )
        files = {_text(k): _bytes(v) for k, v in stored.items() if _text(k) != INDEX}
        index = json.loads(next(_bytes(v) for k, v in stored.items() if _text(k) == INDEX))
        actual = {name: _digest(data) for name, data in files.items()}
        if actual != index or content_id(actual) != artifact_id:
            raise IntegrityError(
                f"artifact {artifact_id} in Redis does not match its content hash; "
                "it was altered after it was stored. Register the version again"
            )
        staging = safe_join(self._ensure("tmp"), uuid.uuid4().hex)
        try:
            for name, data in files.items():
                target = safe_join(staging, *name.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            self._ensure("bundles")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def delete(self, artifact_id: str) -> None:
        """Remove the bundle from Redis and from this host's copies."""
        try:
            removed = self.client.delete(self.key(artifact_id))
        except redis.RedisError as exc:
            raise self._failure(exc) from exc
        if not removed:
            raise NotFoundError(f"no artifact {artifact_id} in Redis at {self.url}")
        shutil.rmtree(safe_join(self.cache_dir, "bundles", artifact_id), ignore_errors=True)

    def _ensure(self, name: str) -> Path:
        folder = safe_join(self.cache_dir, name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

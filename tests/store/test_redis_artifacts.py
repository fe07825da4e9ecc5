"""Bundles in Redis by content hash, fetched and verified per host; two servers, one store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mlprod.errors import IntegrityError, NotFoundError
from mlprod.store import ArtifactStore, RedisArtifacts, open_artifacts
from support import PrivateRedis, Project, Server, records_from, write_project

pytestmark = pytest.mark.redis
BAD_IDS = ["../etc", "0" * 63, "0" * 65, "A" * 64, "0" * 64 + "/..", "", "g" * 64]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    (folder / "nested").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"name": "churn"}', encoding="utf-8")
    (folder / "model.txt").write_bytes(bytes(range(256)) * 10)
    (folder / "nested" / "deep.bin").write_bytes(b"\x00\x01deep")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_round_trip_by_content_hash(
    private_redis: PrivateRedis, source: Path, tmp_path: Path
) -> None:
    one = RedisArtifacts.open(private_redis.url, cache_dir=tmp_path / "host-a")
    two = RedisArtifacts.open(private_redis.url, cache_dir=tmp_path / "host-b")
    assert isinstance(one, ArtifactStore)
    bundle_id = one.put_dir(source)
    assert one.put_dir(source) == bundle_id  # same content, same entry
    assert _files(two.path(bundle_id)) == _files(source)  # another host fetches it
    assert two.path(bundle_id).is_relative_to(tmp_path / "host-b")
    (source / "model.txt").write_bytes(b"changed")
    assert one.put_dir(source) != bundle_id
    for bad in BAD_IDS:
        with pytest.raises(NotFoundError):
            one.path(bad)


def test_altered_bundles_are_refused_or_fetched_again(
    private_redis: PrivateRedis, source: Path, tmp_path: Path
) -> None:
    store = RedisArtifacts.open(private_redis.url, cache_dir=tmp_path / "host")
    bundle_id = store.put_dir(source)
    local = store.path(bundle_id)
    (local / "model.txt").write_bytes(b"tampered on disk")
    assert (store.path(bundle_id) / "model.txt").read_bytes() == (source / "model.txt").read_bytes()
    private_redis.client().hset(store.key(bundle_id), "model.txt", b"tampered in redis")
    fresh = RedisArtifacts.open(private_redis.url, cache_dir=tmp_path / "other-host")
    with pytest.raises(IntegrityError, match="does not match its content hash"):
        fresh.path(bundle_id)
    store.delete(bundle_id)
    with pytest.raises(NotFoundError, match="no artifact"):
        fresh.path(bundle_id)


def test_settings_choose_the_backend(private_redis: PrivateRedis, tmp_path: Path) -> None:
    from mlprod.settings import Settings

    chosen = open_artifacts(Settings(store=str(tmp_path / "s"), artifacts=private_redis.url))
    assert isinstance(chosen, RedisArtifacts)
    assert chosen.cache_dir == (tmp_path / "s" / "bundles").resolve()


@pytest.mark.slow
def test_two_servers_with_separate_folders_serve_one_store(
    private_redis: PrivateRedis, tmp_path: Path, postgres_url: str
) -> None:
    """Hosts with no shared disk: one PostgreSQL store, bundles in Redis, own folders."""
    from mlprod.pipelines import load, promote, train
    from mlprod.settings import Settings

    project = write_project(tmp_path / "p", rows=1500, store=postgres_url)
    trainer = Settings(store=postgres_url, artifacts=private_redis.url,
                       artifacts_cache=str(tmp_path / "trainer"))  # fmt: skip
    run = train(project.spec, settings=trainer)
    promote("churn", run.version, "production", settings=trainer, actor="test")
    servers = []
    try:
        for host in ("host-a", "host-b"):
            env = {"MLPROD_ARTIFACTS": private_redis.url,
                   "MLPROD_ARTIFACTS_CACHE": str(tmp_path / host)}  # fmt: skip
            servers.append(Server(Project(project.root, postgres_url), env=env))
        answers = []
        record = records_from(project, 1)
        for server in servers:
            server.wait_ready()
            reply = httpx.post(f"{server.url}/v1/models/churn/predict", json={"records": record})
            assert reply.status_code == 200, reply.text
            answers.append(reply.json()["predictions"][0])
        assert answers[0]["version"] == answers[1]["version"] == run.version
        assert answers[0]["score"] == answers[1]["score"]
        for host in ("host-a", "host-b"):
            assert list((tmp_path / host / "bundles").iterdir())  # each fetched its own copy
        reader = Settings(store=postgres_url, artifacts=private_redis.url,
                          artifacts_cache=str(tmp_path / "notebook"))  # fmt: skip
        model = load("churn@production", settings=reader)
        assert model.version == run.version
    finally:
        for server in servers:
            server.stop()

"""The datamart: sources in Redis as compressed Arrow IPC, read by train while fresh."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from mlprod.data import DataCache, make_churn_table, read_source
from mlprod.spec import SqlSource
from support import REDIS_URL, SMALL_SPEC, Project, run_cli

pytestmark = pytest.mark.redis


@pytest.fixture
def cache(redis_prefix: str) -> DataCache:
    return DataCache.open(REDIS_URL, prefix=redis_prefix)


def test_a_file_round_trips_and_a_changed_file_is_a_new_entry(
    cache: DataCache, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    make_churn_table(500, seed=1).to_csv(path, index=False)
    entry = cache.put(str(path), ttl=60)
    assert entry.rows == 500 and 0 < entry.bytes < path.stat().st_size
    pd.testing.assert_frame_equal(cache.get(str(path)), pd.read_csv(path))
    make_churn_table(400, seed=2).to_csv(path, index=False)
    assert cache.get(str(path)) is None  # the file changed: the old rows do not answer
    assert len(read_source(str(path), cache=cache)) == 400


def test_entries_expire_and_a_lost_part_is_a_miss(cache: DataCache, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    make_churn_table(300, seed=1).to_parquet(path)
    cache.put(str(path), ttl=1)
    assert cache.get(str(path)) is not None
    time.sleep(1.6)
    assert cache.get(str(path)) is None and cache.info(str(path)) is None
    entry = cache.put(str(path), ttl=60)
    cache.client.delete(f"{entry.key}:0")  # as maxmemory eviction would
    assert cache.get(str(path)) is None


@pytest.mark.slow
def test_train_reads_a_cached_query_after_the_table_is_gone(
    cache: DataCache, redis_prefix: str, postgres_url: str, tmp_path: Path
) -> None:
    engine = sa.create_engine(postgres_url)
    make_churn_table(1500, seed=3).to_sql("customers", engine, index=False)
    source = SqlSource(url=postgres_url, query="SELECT * FROM customers")
    root = tmp_path / "p"
    root.mkdir()
    spec = SMALL_SPEC.replace(
        "  source: customers.csv",
        f"  source: {{url: '{postgres_url}', query: 'SELECT * FROM customers'}}",
    )
    (root / "mlprod.yaml").write_text(spec, encoding="utf-8")
    project = Project(root)
    env_prefix = {"MLPROD_CACHE": REDIS_URL, "MLPROD_REDIS_PREFIX": redis_prefix}
    done = cli_json_with(project, env_prefix, "data", "cache", "--ttl", "10min")
    assert done[0]["rows"] == 1500
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE customers")
    engine.dispose()
    assert len(read_source(source, cache=cache)) == 1500
    trained = cli_json_with(project, env_prefix, "train")
    assert trained["version"] == 1
    without = run_cli(project, "train", check=False)
    assert without.returncode == 1 and "customers" in without.stderr  # the table is gone


def cli_json_with(project: Project, env: dict[str, str], *args: str) -> Any:
    """`mlprod ARGS --json` with extra environment variables."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mlprod", *args, "--json"],
        cwd=project.root, env={**project.env(), **env},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)

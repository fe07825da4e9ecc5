"""The Spark engine on a real local[2] cluster: same scores as the local engine, bundle opened
once per Python worker, Parquet and PostgreSQL over JDBC in and out, a finished job a no-op.

One session is shared by the module (starting Spark costs seconds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import mlprod
from mlprod.batch import SqlQuery, SqlTable, score
from mlprod.batch._jobs import job_key
from mlprod.bundle import Model
from mlprod.data import spark_available, spark_session
from mlprod.store import Store
from mlprod.store import schema as t
from support import Project, need_service

pytestmark = [pytest.mark.spark, pytest.mark.slow]
SMALL_PARTITIONS = (  # a job in a process of its own: one partition per small file
    "--conf spark.sql.files.maxPartitionBytes=8k --conf spark.sql.files.openCostInBytes=8k "
    "pyspark-shell"
)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    missing = spark_available()
    if missing is not None:
        need_service("Spark", missing)
    session = spark_session("local[2]")
    session.conf.set("spark.sql.files.maxPartitionBytes", "8k")  # many partitions, two workers
    session.conf.set("spark.sql.files.openCostInBytes", "8k")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def model(trained_project: Project) -> Model:
    return mlprod.load("churn@production", store=trained_project.store)


@pytest.fixture(scope="module")
def rows(trained_project: Project) -> pd.DataFrame:
    frame = pd.read_csv(trained_project.root / "customers.csv").drop(columns=["churned"])
    frame["customer_id"] = [f"S{i:06d}" for i in range(len(frame))]
    return frame


def test_spark_scores_equal_the_local_engine_and_open_the_bundle_once_per_worker(
    spark: Any, trained_project: Project, model: Model, rows: pd.DataFrame, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):  # six files: at least six partitions for two workers
        rows.iloc[i::6].to_parquet(folder / f"part-{i}.parquet")
    settings = trained_project.settings()
    local = score(model, folder, tmp_path / "local.parquet", settings=settings, log=False)
    remote = score(
        model, folder, tmp_path / "spark", settings=settings, engine="spark", master="local[2]",
        job_id="spark-files",
    )  # fmt: skip
    assert remote.rows == local.rows == len(rows) and remote.engine == "spark"
    got = pd.read_parquet(tmp_path / "spark").set_index("customer_id").sort_index()
    want = pd.read_parquet(tmp_path / "local.parquet").set_index("customer_id").sort_index()
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=1e-12)
    assert (got["label"] == want["label"]).all() and got["prediction_id"].is_unique
    opened, partitions = (int(w) for w in remote.notes[0].split()[2:6:3])
    assert 1 <= opened <= 2 < partitions, remote.notes
    again = score(model, folder, tmp_path / "spark", settings=settings, engine="spark",
                  master="local[2]", job_id="spark-files")  # fmt: skip
    assert again.already_done and again.rows == len(rows)


@pytest.mark.postgres
def test_spark_reads_and_writes_postgres_over_jdbc(
    spark: Any, trained_project: Project, model: Model, rows: pd.DataFrame, postgres_url: str
) -> None:
    engine = sa.create_engine(postgres_url)
    rows.to_sql("customers", engine, index=False)
    result = score(
        model, SqlQuery(postgres_url, "SELECT * FROM customers"), SqlTable(postgres_url, "scores"),
        settings=trained_project.settings(), engine="spark", master="local[2]",
    )  # fmt: skip
    out = pd.read_sql("SELECT * FROM scores", engine).set_index("customer_id").sort_index()
    assert result.rows == len(out) == len(rows)
    expected = pd.Series(model.score(rows), index=rows["customer_id"]).sort_index()
    np.testing.assert_allclose(out["score"], expected, rtol=0, atol=1e-12)
    assert str(out["scored_at"].dt.tz) == "UTC"
    assert out["scored_at"].nunique() == 1
    with engine.connect() as conn:
        assert sorted(sa.inspect(conn).get_table_names()) == ["customers", "scores"]
    engine.dispose()


def test_a_spark_job_killed_half_way_resumes_by_job_id_and_logs_each_row_once(
    spark: Any, trained_project: Project, rows: pd.DataFrame, tmp_path: Path
) -> None:
    """`kill -9` of the job's process group once some parts are staged; the rerun scores only
    the rest, and output, prediction log and monitoring hold every row exactly once."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(24):  # one partition per file: 24 tasks for two cores
        rows.iloc[i::24].to_parquet(folder / f"part-{i:02d}.parquet")
    out, key = tmp_path / "scores", job_key("spark-kill")
    stage = tmp_path / f".scores.mlprod-{key}"
    args = ["predict", "churn", "--input", str(folder), "--output", str(out),
            "--engine", "spark", "--master", "local[2]", "--job-id", "spark-kill"]  # fmt: skip
    env = {**trained_project.env(), "PYSPARK_SUBMIT_ARGS": SMALL_PARTITIONS}
    version = int(mlprod.load("churn@production", store=trained_project.store).version or 0)
    before = _window_predictions(trained_project, version)
    first = subprocess.Popen([sys.executable, "-m", "mlprod", *args], cwd=trained_project.root,
                             env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while len(list(stage.glob("part-*.parquet"))) < 6:
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the Spark job never staged six parts"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    staged = len(list(stage.glob("part-*.parquet")))
    assert not out.exists() and 6 <= staged < 24  # nothing visible, parts kept
    again = subprocess.run([sys.executable, "-m", "mlprod", *args, "--json"],
                           cwd=trained_project.root, env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads(again.stdout)
    assert result["rows"] == len(rows) and 0 < result["resumed_after"] < len(rows)
    got = pd.read_parquet(out)
    assert len(got) == len(rows) and got["prediction_id"].is_unique
    assert sorted(got["customer_id"]) == sorted(rows["customer_id"])
    with Store.from_settings(trained_project.settings()) as store:
        b = t.batch_predictions
        logged = store.read(
            lambda conn: conn.execute(sa.select(b.c.seq).where(b.c.job == key)).scalars().all()
        )
    assert sorted(f"{key}{seq:016x}" for seq in logged) == sorted(got["prediction_id"])
    assert _window_predictions(trained_project, version) - before == len(rows)


def _window_predictions(project: Project, version: int) -> int:
    w = t.window_stats
    query = sa.select(sa.func.coalesce(sa.func.sum(w.c.predictions), 0)).where(
        w.c.model == "churn", w.c.version == version
    )
    with Store.from_settings(project.settings()) as store:
        return int(store.read(lambda conn: conn.execute(query).scalar_one()))

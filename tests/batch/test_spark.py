"""The Spark engine on a real local[2] cluster: same scores as the local engine, bundle opened
once per Python worker, Parquet and PostgreSQL over JDBC in and out, a finished job a no-op.

One session is shared by the module (starting Spark costs seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import mlprod
from mlprod.batch import SqlQuery, SqlTable, score
from mlprod.bundle import Model
from mlprod.data import spark_available, spark_session
from support import Project, need_service

pytestmark = [pytest.mark.spark, pytest.mark.slow]


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

"""Batch scoring of a multiclass version, as a user runs it, on both engines.

Proves that every row gets one ``proba_<class>`` column per class equal to the library's
`predict_proba`, the most probable class as its label and that class's probability as its
score; that the prediction log keeps each row's top-class probability and predicted class
and monitoring counts the predicted classes' shares, once each, even across a ``kill -9``
and a resume; that PostgreSQL tables get the probabilities as DOUBLE PRECISION columns and
an older table without them is refused with the difference; that a kept column named like
a probability column is refused before anything is written; and that Spark gives the same
rows, log and counts as the local engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

import mlprod
from mlprod.batch import SqlQuery, SqlTable, get_job, score
from mlprod.batch._jobs import job_key
from mlprod.batch._scorer import BatchScorer
from mlprod.bundle import Model, cached_trees, compile_trees, tree_compiler_available
from mlprod.errors import DataError
from mlprod.monitoring._reference import PREDICTED
from mlprod.store import Store
from mlprod.store import schema as t
from support import Project, run_cli
from tiers_kit import CLASSES, SPEC, make_tiers

PROBAS = [f"proba_{label}" for label in CLASSES]
COLUMNS = ["prediction_id", "customer_id", "model", "version", "score", "label", "scored_at"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """tiers@1: LightGBM (40 rounds: 120 trees) on 800 rows of three classes, with an
    entity, in production."""
    from mlprod.pipelines import promote, train

    root = tmp_path_factory.mktemp("tiers-batch")
    data = make_tiers(800)
    data.insert(0, "customer_id", [f"C{i:05d}" for i in range(len(data))])
    data.to_csv(root / "customers.csv", index=False)
    spec = SPEC.replace("  target: tier\n", "  target: tier\n  entity: customer_id\n")
    spec = spec.replace(
        "[logistic_regression, lightgbm]", "[{type: lightgbm, params: {n_estimators: 40}}]"
    )
    (root / "mlprod.yaml").write_text(spec, encoding="utf-8")
    project = Project(root)
    run = train(project.spec, store=project.store)
    promote("tiers", run.version, "production", store=project.store, actor="test")
    return project


@pytest.fixture(scope="module")
def model(project: Project) -> Model:
    loaded = mlprod.load("tiers@production", store=project.store)
    assert loaded.multiclass and loaded.classes == CLASSES and loaded.flavor == "lightgbm"
    return loaded


def new_rows(n: int, seed: int = 11, prefix: str = "N") -> pd.DataFrame:
    frame = make_tiers(n, seed=seed).drop(columns="tier")
    frame.insert(0, "customer_id", [f"{prefix}{i:06d}" for i in range(n)])
    return frame


def check_rows(model: Model, out: pd.DataFrame, rows: pd.DataFrame) -> None:
    """Probabilities equal the library's to 1e-12; label its argmax; score its maximum."""
    out = out.set_index("customer_id").loc[rows["customer_id"]]
    expected = model.predict_proba(rows)
    np.testing.assert_allclose(out[PROBAS].to_numpy(), expected, rtol=0, atol=1e-12)
    best = np.argmax(out[PROBAS].to_numpy(), axis=1)
    assert (out["label"].to_numpy() == np.asarray(CLASSES)[best]).all()
    assert (out["label"].to_numpy() == model.predict(rows)).all()
    np.testing.assert_array_equal(out["score"], out[PROBAS].max(axis=1))
    assert out["prediction_id"].is_unique and set(out["version"]) == {model.version}


def logged(project: Project, job: str) -> pd.DataFrame:
    """The job's rows in the batch prediction log, with their prediction ids."""
    b, key = t.batch_predictions, job_key(job)
    query = sa.select(b.c.seq, b.c.entity, b.c.score, b.c.label).where(b.c.job == key)
    with Store.from_settings(project.settings()) as store:
        found = store.read(lambda conn: conn.execute(query.order_by(b.c.seq)).all())
    frame = pd.DataFrame(found, columns=["seq", "entity", "score", "label"])
    frame["prediction_id"] = [f"{key}{seq:016x}" for seq in frame["seq"]]
    return frame


def class_counts(project: Project, version: int) -> np.ndarray:
    """The predicted classes' counts the store holds, summed over the version's windows."""
    f = t.feature_counts
    query = sa.select(f.c.counts).where(
        f.c.model == "tiers", f.c.version == version, f.c.feature == PREDICTED
    )
    with Store.from_settings(project.settings()) as store:
        rows = store.read(lambda conn: conn.execute(query).scalars().all())
    total = np.zeros(len(CLASSES) + 3, dtype=np.int64)  # the classes, other, unseen, missing
    for counts in rows:
        total[: len(counts)] += np.asarray(counts, dtype=np.int64)
    return total


def expected_counts(model: Model, labels: pd.Series) -> np.ndarray:
    """The labels counted into the reference's class bins by hand."""
    assert model.reference is not None
    categories = model.reference["predicted"]["categories"]
    assert sorted(categories) == CLASSES
    counts = [int((labels == name).sum()) for name in categories]
    return np.asarray([*counts, 0, 0, int(labels.isna().sum())], dtype=np.int64)


def check_log_and_counts(
    project: Project, model: Model, out: pd.DataFrame, job: str, before: np.ndarray
) -> None:
    """Every row logged once with its top-class probability and class, and counted once."""
    log = logged(project, job).set_index("prediction_id")
    out = out.set_index("prediction_id")
    assert sorted(log.index) == sorted(out.index)
    log = log.loc[out.index]
    np.testing.assert_array_equal(log["score"], out["score"])  # exact
    assert list(log["label"]) == list(out["label"]) and list(log["entity"]) == list(
        out["customer_id"]
    )
    counted = class_counts(project, int(model.version or 0)) - before
    np.testing.assert_array_equal(counted, expected_counts(model, out["label"]))


# --- the local engine


def test_a_file_gets_every_class_probability_and_is_logged_and_counted(
    project: Project, model: Model, tmp_path: Path
) -> None:
    rows = new_rows(900)
    rows.to_parquet(tmp_path / "in.parquet", row_group_size=200)
    before = class_counts(project, int(model.version or 0))
    result = score(
        model, tmp_path / "in.parquet", tmp_path / "out.parquet",
        settings=project.settings(), chunk_rows=250, job_id="tiers-file",
    )  # fmt: skip
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert result.rows == len(out) == 900
    assert list(out.columns) == [*COLUMNS, *PROBAS]
    assert list(out["customer_id"]) == list(rows["customer_id"])  # order kept
    written = pq.read_schema(tmp_path / "out.parquet")
    assert written.field("label").type == pa.string()  # the classes' own type
    assert {written.field(name).type for name in PROBAS} == {pa.float64()}
    assert any("arrow encoder matches" in note for note in result.notes), result.notes
    check_rows(model, out, rows)
    check_log_and_counts(project, model, out, "tiers-file", before)


def test_rows_without_finite_scores_get_no_score_label_or_probabilities(model: Model) -> None:
    """A row with any probability not finite is no answer: every scored column null."""
    from mlprod.batch._output import output_rows, output_schema

    rows = new_rows(4)
    batch = pa.RecordBatch.from_pandas(rows, preserve_index=False)
    schema = output_schema(model, batch.schema, ())
    scores = np.array([[0.2, 0.5, 0.3], [np.nan, 0.5, 0.5], [0.1, 0.1, 0.8], [0.6, np.inf, 0]])
    table = output_rows(
        model, schema, batch, scores, job_key="0" * 16, start=0, scored_at=datetime.now(UTC)
    )
    got = table.to_pydict()
    assert got["label"] == ["gold", None, "silver", None]
    assert got["score"] == [0.5, None, 0.8, None]
    assert got["proba_bronze"] == [0.2, None, 0.1, None]
    assert got["proba_silver"] == [0.3, None, 0.8, None]


def test_a_kept_column_named_like_a_probability_is_refused_before_anything_is_written(
    project: Project, model: Model, tmp_path: Path
) -> None:
    rows = new_rows(50)
    rows["proba_gold"] = 0.5  # e.g. last night's output scored again
    rows.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(DataError) as caught:
        score(model, tmp_path / "in.parquet", tmp_path / "out.parquet",
              settings=project.settings(), keep=["proba_gold"], job_id="clash")  # fmt: skip
    message = str(caught.value)
    assert "['proba_gold']" in message and "class probabilities of tiers@" in message
    assert "--keep" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]
    with Store.from_settings(project.settings()) as store:
        assert get_job(store, "clash") is None  # refused before the job was recorded
    # '*' carries every input column except what scoring writes: the new proba_gold wins
    score(model, tmp_path / "in.parquet", tmp_path / "all.parquet", settings=project.settings(),
          keep=["*"], log=False)  # fmt: skip
    out = pd.read_parquet(tmp_path / "all.parquet")
    assert list(out.columns) == [*COLUMNS[:2], "spend", "visits", "tenure", "region",
                                 *COLUMNS[2:], *PROBAS]  # fmt: skip
    check_rows(model, out, rows)


@pytest.mark.postgres
def test_postgres_in_and_out_with_double_precision_probabilities(
    project: Project, model: Model, postgres_url: str
) -> None:
    engine = sa.create_engine(postgres_url)
    rows = new_rows(700, seed=12, prefix="P")
    rows.to_sql("customers", engine, index=False)
    query = SqlQuery(postgres_url, "SELECT * FROM customers ORDER BY customer_id")
    before = class_counts(project, int(model.version or 0))
    result = score(model, query, SqlTable(postgres_url, "tier_scores"),
                   settings=project.settings(), chunk_rows=300, job_id="tiers-pg")  # fmt: skip
    out = pd.read_sql("SELECT * FROM tier_scores", engine)
    assert result.rows == len(out) == 700 and list(out.columns) == [*COLUMNS, *PROBAS]
    check_rows(model, out, rows)
    check_log_and_counts(project, model, out, "tiers-pg", before)
    with engine.connect() as conn:
        types = dict(
            conn.exec_driver_sql(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'tier_scores'"
            ).all()
        )
        assert {types[name] for name in PROBAS} == {"double precision"}
        assert types["label"] == "text" and types["score"] == "double precision"
        conn.exec_driver_sql(
            "CREATE TABLE older (prediction_id text, customer_id text, model text, "
            "version bigint, score double precision, label text, "
            "scored_at timestamp with time zone)"
        )
        conn.commit()
    with pytest.raises(DataError) as caught:
        score(model, query, SqlTable(postgres_url, "older"), settings=project.settings())
    message = str(caught.value)
    assert all(f"no column {name} (" in message for name in PROBAS), message
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM older").scalar_one() == 0
    engine.dispose()


@pytest.mark.slow
def test_kill_9_half_way_then_resume_writes_logs_and_counts_each_row_once(
    project: Project, model: Model, tmp_path: Path
) -> None:
    """`mlprod predict` killed once half the chunks are staged, then run again by job id."""
    rows = new_rows(40_000, seed=13, prefix="K")
    rows.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    args = ["predict", "tiers", "--input", str(tmp_path / "in.parquet"), "--output", str(out),
            "--job-id", "tiers-kill", "--chunk-rows", "400"]  # fmt: skip
    stage = tmp_path / f".out.parquet.mlprod-{job_key('tiers-kill')}"
    before = class_counts(project, int(model.version or 0))
    first = subprocess.Popen([sys.executable, "-m", "mlprod", *args], cwd=project.root,
                             env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while sum(int(p.stem.split("-")[2]) for p in stage.glob("part-*.parquet")) < len(rows) // 2:
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the job never got half way"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert not out.exists() and stage.is_dir()
    again = subprocess.run([sys.executable, "-m", "mlprod", *args, "--json"], cwd=project.root,
                           env=project.env(), capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads(again.stdout)
    assert 0 < result["resumed_after"] < len(rows) and result["rows"] == len(rows)
    got = pd.read_parquet(out)
    assert len(got) == len(rows) and list(got.columns) == [*COLUMNS, *PROBAS]
    check_rows(model, got, rows)
    check_log_and_counts(project, model, got, "tiers-kill", before)


def test_the_cli_writes_every_class_probability_to_csv(project: Project, tmp_path: Path) -> None:
    rows = new_rows(120, seed=14, prefix="L")
    rows.to_csv(tmp_path / "in.csv", index=False)
    done = run_cli(project, "predict", "tiers@production", "--input", str(tmp_path / "in.csv"),
                   "--output", str(tmp_path / "out.csv"), "--no-log")  # fmt: skip
    assert "scored 120 rows with tiers@" in done.stdout
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == [*COLUMNS, *PROBAS]
    model = mlprod.load("tiers@production", store=project.store)
    np.testing.assert_allclose(out[PROBAS], model.predict_proba(rows), rtol=0, atol=1e-12)
    assert (out["label"] == model.predict(rows)).all()


@pytest.mark.skipif(not tree_compiler_available(), reason="the 'compiled' extra is missing")
def test_compiled_trees_score_every_class_once_they_match_the_booster(
    model: Model, tmp_path: Path
) -> None:
    """lleaves predicts a multiclass forest's n x k softmax; the scorer takes it only after
    the whole matrix matches the booster on the test rows."""
    assert compile_trees(model, tmp_path) is not None  # what a server or a long job leaves
    scorer = BatchScorer(model, threads=2, compiled=tmp_path)
    try:
        assert "compiled trees" in scorer.engine, scorer.notes
        assert any("compiled trees (cached) match the model" in n for n in scorer.notes)
        rows = new_rows(3000, seed=17)
        got = scorer.score(pa.RecordBatch.from_pandas(rows, preserve_index=False))
    finally:
        scorer.close()
    assert got.shape == (3000, 3)
    np.testing.assert_allclose(got, model.predict_proba(rows), rtol=0, atol=1e-12)


@pytest.mark.skipif(not tree_compiler_available(), reason="the 'compiled' extra is missing")
def test_trees_compiling_when_a_job_ends_land_in_the_cache_for_the_next(
    model: Model, tmp_path: Path
) -> None:
    """A job shorter than the compile waits for it: the next job scores on compiled trees."""
    batch = pa.RecordBatch.from_pandas(new_rows(200, seed=21), preserve_index=False)
    first = BatchScorer(model, compiled=tmp_path, compile_now=True)
    expected = first.score(batch)
    first.close()
    assert cached_trees(model, tmp_path) is not None
    assert any("for later jobs" in note for note in first.notes), first.notes
    later = BatchScorer(model, compiled=tmp_path)
    try:
        assert "compiled trees" in later.engine, later.notes
        np.testing.assert_allclose(later.score(batch), expected, rtol=0, atol=1e-9)
    finally:
        later.close()


# --- Spark


@pytest.mark.spark
@pytest.mark.slow
def test_spark_files_give_the_local_rows_log_and_counts(
    spark: Any, project: Project, model: Model, tmp_path: Path
) -> None:
    rows = new_rows(1200, seed=15, prefix="S")
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):  # four files: several partitions for two workers
        rows.iloc[i::4].to_parquet(folder / f"part-{i}.parquet")
    settings = project.settings()
    local = score(model, folder, tmp_path / "local.parquet", settings=settings, log=False)
    before = class_counts(project, int(model.version or 0))
    remote = score(model, folder, tmp_path / "spark", settings=settings, engine="spark",
                   master="local[2]", job_id="tiers-spark")  # fmt: skip
    assert remote.rows == local.rows == len(rows) and remote.engine == "spark"
    got = pd.read_parquet(tmp_path / "spark")
    assert list(got.columns) == [*COLUMNS, *PROBAS]
    check_rows(model, got, rows)
    want = pd.read_parquet(tmp_path / "local.parquet").set_index("customer_id")
    mine = got.set_index("customer_id").loc[want.index]
    np.testing.assert_allclose(mine[PROBAS], want[PROBAS], rtol=0, atol=1e-12)
    assert (mine["label"] == want["label"]).all()
    check_log_and_counts(project, model, got, "tiers-spark", before)
    again = score(model, folder, tmp_path / "spark", settings=settings, engine="spark",
                  master="local[2]", job_id="tiers-spark")  # fmt: skip
    assert again.already_done and again.rows == len(rows)
    assert (class_counts(project, int(model.version or 0)) - before).sum() == len(rows)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.postgres
def test_spark_reads_and_writes_postgres_with_the_probabilities(
    spark: Any, project: Project, model: Model, postgres_url: str
) -> None:
    engine = sa.create_engine(postgres_url)
    rows = new_rows(800, seed=16, prefix="Q")
    rows.to_sql("customers", engine, index=False)
    result = score(
        model, SqlQuery(postgres_url, "SELECT * FROM customers"),
        SqlTable(postgres_url, "tier_scores"), settings=project.settings(), engine="spark",
        master="local[2]", log=False,
    )  # fmt: skip
    out = pd.read_sql("SELECT * FROM tier_scores", engine)
    assert result.rows == len(out) == len(rows)
    assert list(out.columns) == [*COLUMNS, *PROBAS]
    check_rows(model, out, rows)
    with engine.connect() as conn:
        assert sorted(sa.inspect(conn).get_table_names()) == ["customers", "tier_scores"]
    engine.dispose()

"""Batch scoring as a user runs it: files, folders, globs and SQL in; files and tables out.

Proves that every row gets an id, the model, version, score, label, time and the spec's
entity and time columns, with the library's scores; that bad input fails before anything
is written and leaves nothing behind; that a job killed with ``kill -9`` half way and run
again with its job id writes every row exactly once (into files and into a PostgreSQL
table), logs and counts each once; that a finished job run again does nothing; and that
outcomes join batch predictions by id and by entity and time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
from mlprod.bundle import Model
from mlprod.errors import ConflictError, DataError
from mlprod.monitoring import ingest_outcomes, match_outcomes
from mlprod.store import Store
from mlprod.store import schema as t
from support import Project, write_project
from support import run_cli as cli

SCORED = ["prediction_id", "customer_id", "event_time", "model", "version", "score", "label"]


@pytest.fixture(scope="module")
def model(trained_project: Project) -> Model:
    return mlprod.load("churn@production", store=trained_project.store)


@pytest.fixture(scope="module")
def rows(trained_project: Project) -> pd.DataFrame:
    """12,000 rows to score, with unique customer ids."""
    frame = pd.read_csv(trained_project.root / "customers.csv").drop(columns=["churned"])
    frame = pd.concat([frame] * 4, ignore_index=True)
    frame["customer_id"] = [f"B{i:06d}" for i in range(len(frame))]
    return frame


def _store(project: Project) -> Store:
    return Store.from_settings(project.settings())


def _window_predictions(project: Project, version: int) -> int:
    query = sa.select(sa.func.coalesce(sa.func.sum(t.window_stats.c.predictions), 0)).where(
        t.window_stats.c.model == "churn", t.window_stats.c.version == version
    )
    with _store(project) as store:
        return int(store.read(lambda conn: conn.execute(query).scalar_one()))


def test_a_file_scores_like_the_library_with_ids_keys_and_time(
    trained_project: Project, model: Model, rows: pd.DataFrame, tmp_path: Path
) -> None:
    rows.to_parquet(tmp_path / "in.parquet", row_group_size=5000)
    result = score(
        model, tmp_path / "in.parquet", tmp_path / "out.parquet",
        settings=trained_project.settings(), chunk_rows=4096, job_id="file-job",
    )  # fmt: skip
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert result.rows == len(rows) == len(out) and result.job_id == "file-job"
    assert list(out.columns) == [*SCORED, "scored_at"]
    assert out["prediction_id"].is_unique and out["prediction_id"].str.len().eq(32).all()
    assert (out["customer_id"] == rows["customer_id"]).all()  # order kept, keys carried
    assert set(out["model"]) == {"churn"} and set(out["version"]) == {model.version}
    np.testing.assert_allclose(out["score"], model.score(rows), rtol=0, atol=1e-12)
    expected = np.where(out["score"] >= model.threshold, *reversed(model.classes))
    assert (out["label"].to_numpy() == expected).all()
    assert out["scored_at"].nunique() == 1 and str(out["scored_at"].dt.tz) == "UTC"
    assert any("arrow encoder matches" in note for note in result.notes), result.notes
    assert not list(tmp_path.glob(".out.parquet.mlprod-*"))  # staging gone once published


def test_folders_globs_and_csv_give_the_same_rows(
    trained_project: Project, model: Model, rows: pd.DataFrame, tmp_path: Path
) -> None:
    """Chunks never depend on how files are cut: three files of odd row groups, one CSV."""
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, (start, stop) in enumerate([(0, 1000), (1000, 7777), (7777, len(rows))]):
        rows.iloc[start:stop].to_parquet(parts / f"p{i}.parquet", row_group_size=333 + i * 999)
    rows.to_csv(tmp_path / "in.csv", index=False)
    settings = trained_project.settings()
    outs = {}
    for name, source in [("folder", parts), ("glob", str(parts / "p*.parquet"))]:
        score(model, source, tmp_path / f"{name}.parquet", settings=settings, chunk_rows=2500)
        outs[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
    score(model, tmp_path / "in.csv", tmp_path / "csv.csv", settings=settings, chunk_rows=2500)
    outs["csv"] = pd.read_csv(tmp_path / "csv.csv")
    score(model, parts, tmp_path / "dataset", settings=settings, chunk_rows=2500, log=False)
    outs["dataset"] = pq.read_table(tmp_path / "dataset").to_pandas()
    for out in outs.values():
        assert list(out["customer_id"]) == list(rows["customer_id"])
        np.testing.assert_allclose(out["score"], outs["folder"]["score"], rtol=0, atol=1e-12)
    assert len(list((tmp_path / "dataset").glob("part-*.parquet"))) == 5


def test_missing_columns_fail_before_anything_is_written(
    trained_project: Project, rows: pd.DataFrame, tmp_path: Path
) -> None:
    rows.drop(columns=["plan", "tenure_months"]).to_parquet(tmp_path / "in.parquet")
    done = cli(
        trained_project, "predict", "churn", "--input", str(tmp_path / "in.parquet"),
        "--output", str(tmp_path / "out.parquet"), check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "plan" in done.stderr and "tenure_months" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_a_url_as_output_is_a_clear_error_and_leaves_no_folder(
    trained_project: Project, rows: pd.DataFrame, tmp_path: Path
) -> None:
    rows.head(10).to_parquet(tmp_path / "in.parquet")
    done = cli(
        trained_project, "predict", "churn", "--input", str(tmp_path / "in.parquet"),
        "--output", "postgresql+psycopg://postgres@127.0.0.1/test", check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "--output-table" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (trained_project.root / "postgresql+psycopg:").exists()


@pytest.mark.postgres
def test_sql_to_a_postgres_table_created_then_appended(
    trained_project: Project, model: Model, rows: pd.DataFrame, postgres_url: str
) -> None:
    engine = sa.create_engine(postgres_url)
    rows.head(5000).to_sql("customers", engine, index=False)
    query = SqlQuery(postgres_url, "SELECT * FROM customers ORDER BY customer_id")
    settings = trained_project.settings()
    first = score(
        model, query, SqlTable(postgres_url, "scores"), settings=settings, chunk_rows=1500
    )
    again = score(model, query, SqlTable(postgres_url, "scores"), settings=settings, chunk_rows=999)
    table = pd.read_sql("SELECT * FROM scores ORDER BY prediction_id", engine)
    assert first.rows == again.rows == 5000 and len(table) == 10_000
    assert table["prediction_id"].is_unique  # two jobs, two sets of ids
    mine = table[table["prediction_id"].str.startswith(_key(first.job_id))]
    by_customer = mine.set_index("customer_id")["score"].sort_index()
    expected = pd.Series(model.score(rows.head(5000)), index=rows.head(5000)["customer_id"])
    np.testing.assert_allclose(by_customer, expected.sort_index(), rtol=0, atol=1e-12)
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
    assert sorted(names) == ["customers", "scores"]  # no staging table left behind
    engine.dispose()


def _key(job_id: str) -> str:
    from mlprod.batch._jobs import job_key

    return job_key(job_id)


@pytest.mark.postgres
def test_an_incompatible_table_fails_with_the_difference_and_writes_nothing(
    trained_project: Project, model: Model, rows: pd.DataFrame, postgres_url: str, tmp_path: Path
) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scores (prediction_id text, score text, extra int)")
    rows.head(100).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(DataError) as caught:
        score(model, tmp_path / "in.parquet", SqlTable(postgres_url, "scores"),
              settings=trained_project.settings())  # fmt: skip
    message = str(caught.value)
    assert "column score is TEXT" in message and "no column label" in message
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM scores").scalar_one() == 0
        assert sa.inspect(conn).get_table_names() == ["scores"]
    engine.dispose()


def test_a_finished_job_run_again_does_nothing(
    trained_project: Project, model: Model, rows: pd.DataFrame, tmp_path: Path
) -> None:
    rows.head(3000).to_parquet(tmp_path / "in.parquet")
    args = (model, tmp_path / "in.parquet", tmp_path / "out.parquet")
    settings = trained_project.settings()
    first = score(*args, settings=settings, job_id="once", chunk_rows=1000)
    before = _window_predictions(trained_project, int(model.version or 0))
    (tmp_path / "out.parquet").unlink()
    again = score(*args, settings=settings, job_id="once", chunk_rows=1000)
    assert again.already_done and again.rows == first.rows == 3000
    assert not (tmp_path / "out.parquet").exists()  # nothing was written again
    assert _window_predictions(trained_project, int(model.version or 0)) == before
    with pytest.raises(ConflictError, match="other settings"):
        score(model, tmp_path / "in.parquet", tmp_path / "elsewhere.parquet",
              settings=settings, job_id="once")  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def logging_project(
    request: pytest.FixtureRequest, trained_project: Project, tmp_path: Path
) -> Project:
    """The trained project (SQLite store), or one trained into a PostgreSQL store."""
    if request.param == "sqlite":
        return trained_project
    from mlprod.pipelines import promote, train

    url = request.getfixturevalue("postgres_url")
    project = write_project(tmp_path / "pg", rows=1500, store=url)
    run = train(project.spec, store=project.store)
    promote("churn", run.version, "production", store=project.store, actor="test")
    return project


def _window_sums(project: Project, version: int) -> tuple[int, int]:
    """(predictions, labelled) summed over the version's windows."""
    w = t.window_stats
    query = sa.select(
        sa.func.coalesce(sa.func.sum(w.c.predictions), 0),
        sa.func.coalesce(sa.func.sum(w.c.labelled), 0),
    ).where(w.c.model == "churn", w.c.version == version)
    with _store(project) as store:
        got = store.read(lambda conn: conn.execute(query).one())
    return int(got[0]), int(got[1])


def test_outcomes_join_batch_predictions_by_id_and_by_entity(
    logging_project: Project, rows: pd.DataFrame, tmp_path: Path
) -> None:
    """On SQLite and PostgreSQL (COPY): logged once, counted once, joined by id and entity."""
    project = logging_project
    model = mlprod.load("churn@production", store=project.store)
    version = int(model.version or 0)
    before = _window_sums(project, version)
    rows.head(400).to_parquet(tmp_path / "in.parquet")
    result = score(model, tmp_path / "in.parquet", tmp_path / "out.parquet",
                   settings=project.settings(), job_id="joined", chunk_rows=150)  # fmt: skip
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert _window_sums(project, version)[0] - before[0] == 400  # monitoring counts each row
    with _store(project) as store:
        job = get_job(store, result.job_id)
        assert job is not None and job.status == "done" and job.counted_chunks == 3
        b = t.batch_predictions
        logged = store.read(
            lambda conn: conn.execute(
                sa.select(b.c.seq, b.c.entity, b.c.score).where(b.c.job == _key("joined"))
                .order_by(b.c.seq)
            ).all()
        )  # fmt: skip
        assert [f"{_key('joined')}{seq:016x}" for seq, _, _ in logged] == list(out["prediction_id"])
        assert [entity for _, entity, _ in logged] == list(out["customer_id"])
        np.testing.assert_array_equal([s for _, _, s in logged], out["score"])  # exact
        by_id = [{"prediction_id": p, "label": True} for p in out["prediction_id"][:50]]
        when = job.scored_at.isoformat()  # its latest prediction at or before that time
        by_entity = [{"entity": c, "time": when, "label": False} for c in out["customer_id"][50:80]]
        again = [{"prediction_id": p, "label": False} for p in out["prediction_id"][:5]]
        ingest_outcomes(store, by_id + by_entity + again, model="churn")
        time.sleep(max(0.0, 5.5 - (pd.Timestamp.now(tz="UTC") - job.scored_at).total_seconds()))
        match_outcomes(store, bucket_seconds=60)
        matched = store.read(
            lambda conn: conn.execute(
                sa.select(t.outcomes.c.matched_id).where(t.outcomes.c.status == "matched")
            ).scalars().all()
        )  # fmt: skip
        labelled = store.read(
            lambda conn: conn.execute(
                sa.select(sa.func.count()).where(b.c.labelled.is_(True), b.c.job == _key("joined"))
            ).scalar_one()
        )  # fmt: skip
    assert sorted(matched) == sorted(out["prediction_id"][:80]) and labelled == 80
    assert _window_sums(project, version)[1] - before[1] == 80  # a second outcome not counted


def _predict_process(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlprod", "predict", "churn", *args],
        cwd=project.root, env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _kill_half_way(process: subprocess.Popen[str], staged: Any, total: int) -> None:
    """`kill -9` once at least half the rows are staged (and before the job ends)."""
    deadline = time.monotonic() + 120
    while staged() < total // 2:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the job never got half way"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()


def _check_exactly_once(project: Project, out: pd.DataFrame, rows: pd.DataFrame, job: str) -> None:
    assert len(out) == len(rows) and out["prediction_id"].is_unique
    assert sorted(out["customer_id"]) == sorted(rows["customer_id"])
    expected = mlprod.load("churn@production", store=project.store).score(rows)
    scores = out.set_index("customer_id")["score"].reindex(rows["customer_id"])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
    with _store(project) as store:
        record = get_job(store, job)
        logged = store.read(
            lambda conn: conn.execute(
                sa.select(sa.func.count()).where(t.batch_predictions.c.job == _key(job))
            ).scalar_one()
        )  # fmt: skip
    assert record is not None and record.status == "done" and record.rows == len(rows)
    assert logged == len(rows)


@pytest.mark.slow
def test_kill_9_half_way_into_files_then_resume_writes_each_row_once(
    trained_project: Project, rows: pd.DataFrame, tmp_path: Path
) -> None:
    data = pd.concat([rows] * 3, ignore_index=True)
    data["customer_id"] = [f"K{i:06d}" for i in range(len(data))]
    data.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    args = ("--input", str(tmp_path / "in.parquet"), "--output", str(out), "--job-id", "kill-files",
            "--chunk-rows", "300")  # fmt: skip
    version = int(mlprod.load("churn@production", store=trained_project.store).version or 0)
    before = _window_predictions(trained_project, version)
    stage = tmp_path / f".out.parquet.mlprod-{_key('kill-files')}"

    def staged() -> int:
        return sum(int(p.stem.split("-")[2]) for p in stage.glob("part-*.parquet"))

    _kill_half_way(_predict_process(trained_project, *args), staged, len(data))
    assert not out.exists() and stage.is_dir()  # nothing visible, the staging kept
    done = _predict_process(trained_project, *args, "--json")
    stdout, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    result = json.loads(stdout)
    assert 0 < result["resumed_after"] < len(data) and result["rows"] == len(data)
    _check_exactly_once(trained_project, pd.read_parquet(out), data, "kill-files")
    assert _window_predictions(trained_project, version) - before == len(data)  # counted once


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_9_half_way_into_a_table_then_resume_writes_each_row_once(
    trained_project: Project, rows: pd.DataFrame, postgres_url: str
) -> None:
    engine = sa.create_engine(postgres_url)
    rows.to_sql("customers", engine, index=False)
    query = "SELECT * FROM customers ORDER BY customer_id"
    args = ("--input-sql", query, "--url", postgres_url, "--output-table", "scores",
            "--job-id", "kill-table", "--chunk-rows", "150")  # fmt: skip
    stage = f"mlprod_stage_{_key('kill-table')}"

    def staged() -> int:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(stage):
                return 0
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {stage}").scalar_one())

    _kill_half_way(_predict_process(trained_project, *args), staged, len(rows))
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("scores")  # nothing visible yet
    done = _predict_process(trained_project, *args)
    stdout, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    assert "resumed after" in stdout
    out = pd.read_sql("SELECT * FROM scores", engine)
    _check_exactly_once(trained_project, out, rows, "kill-table")
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table(stage)
    engine.dispose()


def test_progress_prints_one_line_per_chunk_outside_a_terminal(
    trained_project: Project, rows: pd.DataFrame, tmp_path: Path
) -> None:
    rows.head(2500).to_parquet(tmp_path / "in.parquet")
    done = cli(
        trained_project, "predict", "churn", "--input", str(tmp_path / "in.parquet"),
        "--output", str(tmp_path / "out.csv"), "--chunk-rows", "1000", "--no-log",
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if "rows/s" in line]
    assert len(lines) == 3 and "2,500 of 2,500 rows" in lines[-1]
    assert "scored 2,500 rows" in done.stdout
    assert len(pd.read_csv(tmp_path / "out.csv")) == 2500


def test_the_arrow_encoder_reproduces_the_transformer_on_awkward_columns(
    model: Model, rows: pd.DataFrame
) -> None:
    """Nulls, unseen categories, numbers as text, time zones: the same matrix, exactly."""
    from mlprod.batch._encode import ArrowEncoder

    frame = rows.head(500).copy()
    frame.loc[::7, "plan"] = None
    frame.loc[1::7, "plan"] = "never-seen"
    frame.loc[::5, "tenure_months"] = np.nan
    frame["monthly_charges"] = frame["monthly_charges"].astype(str).where(frame.index % 3 > 0)
    frame["has_partner"] = frame["has_partner"].astype(object)
    frame.loc[::4, "has_partner"] = None
    frame["signup_date"] = pd.to_datetime(frame["signup_date"]).dt.tz_localize("Asia/Kolkata")
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    encoded = ArrowEncoder.from_model(model).encode(batch)
    reference = model.transformer.transform(batch.to_pandas())
    np.testing.assert_array_equal(encoded, reference)

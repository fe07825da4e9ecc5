"""`mlprod monitor`, `mlprod outcomes ingest` and batch scoring counted live, as users run them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from mlprod.data import make_churn_table
from mlprod.monitoring._live import read_window_stats
from mlprod.predlog import insert_predictions
from mlprod.store import Store
from mlprod.store import schema as t
from support import Project, trained
from support import run_cli as cli


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained(tmp_path_factory.mktemp("monitor"), rows=2000)


def logged(project: Project, count: int) -> list[str]:
    """Prediction ids logged as a server would (score 0.9: a predicted positive)."""
    ids = [uuid.uuid4().hex for _ in range(count)]
    rows = [
        {
            "id": i,
            "model": "churn",
            "version": 1,
            "at": datetime.now(UTC),
            "record": {},
            "score": 0.9,
            "label": True,
            "latency_ms": 1.0,
        }
        for i in ids
    ]
    with Store.open(project.settings().store_url()) as store:
        insert_predictions(store, rows)
    return ids


def test_batch_scoring_counts_into_the_live_windows(project: Project) -> None:
    make_churn_table(800, seed=21).drop(columns=["churned"]).to_csv(
        project.root / "batch.csv", index=False
    )
    url = project.settings().store_url()
    with Store.open(url) as store:
        before = sum(r["predictions"] for r in read_window_stats(store, "churn"))
    cli(project, "predict", "churn@production", "--input", "batch.csv", "--output", "out.parquet")
    with Store.open(url) as store:
        after = sum(r["predictions"] for r in read_window_stats(store, "churn"))
    scored = pd.read_parquet(project.root / "out.parquet")
    assert after - before == 800 == len(scored)
    report = json.loads(cli(project, "monitor", "churn", "--json").stdout)
    drift = {r["feature"] for r in report["drift"]}
    assert {"plan", "monthly_charges", "score"} <= drift  # binned from the batch's columns


def test_outcomes_from_a_file_and_from_sql_are_matched(project: Project) -> None:
    ids = logged(project, 60)
    pd.DataFrame({"prediction_id": ids[:40], "label": [True] * 30 + [False] * 10}).to_csv(
        project.root / "outcomes.csv", index=False
    )
    first = json.loads(cli(project, "outcomes", "ingest", "outcomes.csv", "--json").stdout)
    assert first == {"received": 40, "duplicates": 0, "matched": 40}
    again = json.loads(cli(project, "outcomes", "ingest", "outcomes.csv", "--json").stdout)
    assert again == {"received": 0, "duplicates": 40, "matched": 0}

    database = project.root / "warehouse.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE churned (prediction_id TEXT, label INTEGER)")
        conn.executemany("INSERT INTO churned VALUES (?, ?)", [(i, 1) for i in ids[40:]])
    query = "SELECT prediction_id, label FROM churned"
    from_sql = cli(
        project, "outcomes", "ingest", "--sql", query, "--url", f"sqlite:///{database}", "--json"
    )
    assert json.loads(from_sql.stdout) == {"received": 20, "duplicates": 0, "matched": 20}

    report = json.loads(cli(project, "monitor", "churn", "--json").stdout)
    live = next(r for r in report["live"] if r["version"] == 1)
    assert live["n_labelled"] >= 60 and live["estimated"] is False
    assert report["outcomes"]["matched"] >= 60


def test_monitor_prints_live_against_test_figures(project: Project) -> None:
    shown = cli(project, "monitor", "churn", "--window", "1h").stdout
    assert "live (whole period) vs test set" in shown and "production" in shown
    assert "drift, window" in shown and "outcomes:" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["monitor", "nope"], "no model 'nope'"),
        (["monitor", "churn", "--window", "soon"], "--window"),
        (["monitor", "churn", "--since", "yesterday"], "neither a duration"),
        (["outcomes", "ingest"], "give a file or --sql"),
        (["outcomes", "ingest", "missing.csv"], "missing.csv"),
    ],
)
def test_mistakes_are_one_clear_line(project: Project, args: list[str], message: str) -> None:
    done = cli(project, *args, check=False)
    assert done.returncode in (1, 2) and message in done.stderr
    assert "Traceback" not in done.stderr


def test_outcomes_without_a_label_column_are_refused(project: Project, tmp_path: Path) -> None:
    pd.DataFrame({"prediction_id": ["a" * 32]}).to_csv(project.root / "nolabel.csv", index=False)
    done = cli(project, "outcomes", "ingest", "nolabel.csv", check=False)
    assert done.returncode == 1 and "outcomes need a label column" in done.stderr


# What scoring and training need and a report does not: `mlprod monitor` stays clear of them.
NOT_FOR_A_REPORT = ("pandas", "pyarrow", "sklearn", "lightgbm", "xgboost", "skops", "duckdb")


def _loaded_after(project: Project, code: str) -> tuple[str, list[str]]:
    """Stdout of `code` in a fresh interpreter, and which of NOT_FOR_A_REPORT it loaded."""
    probe = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps([m for m in {NOT_FOR_A_REPORT!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project.root,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    *output, loaded = done.stdout.strip().splitlines()
    return "\n".join(output), json.loads(loaded)


def test_monitor_reads_a_report_with_traffic_without_pandas(project: Project) -> None:
    make_churn_table(300, seed=5).drop(columns=["churned"]).to_csv(
        project.root / "traffic.csv", index=False
    )
    cli(project, "predict", "churn@production", "--input", "traffic.csv", "--output", "t.parquet")
    code = (
        "from mlprod.cli import main\n"
        "try:\n    main(['monitor', 'churn', '--json'])\nexcept SystemExit as exit:\n"
        "    assert not exit.code, exit.code"
    )
    shown, loaded = _loaded_after(project, code)
    report = json.loads(shown)
    assert sum(point["count"] for point in report["traffic"]) >= 300
    assert {"plan", "monthly_charges", "score"} <= {row["feature"] for row in report["drift"]}
    assert loaded == []
    # The sibling: the labelled side of monitoring does read frames, and the probe sees it.
    _, loaded = _loaded_after(project, "from mlprod.monitoring import labelled_predictions")
    assert "pandas" in loaded


def test_predictions_prune_counts_then_deletes_only_old_rows(project: Project) -> None:
    from datetime import timedelta

    from mlprod.predlog import count_predictions

    old = datetime.now(UTC) - timedelta(days=100)
    rows = [
        {"id": uuid.uuid4().hex, "model": "churn", "version": 1, "at": old, "record": {},
         "score": 0.2, "label": False, "latency_ms": 1.0}
        for _ in range(10)
    ]  # fmt: skip
    outcomes = [  # one matched to an old row, one sent by an id never logged
        {"model": "churn", "prediction_id": rows[0]["id"], "matched_id": rows[0]["id"],
         "status": "matched", "version": 1},
        {"model": None, "prediction_id": "f" * 32, "matched_id": None, "status": "pending",
         "version": None},
    ]  # fmt: skip
    logged(project, 5)
    url = project.settings().store_url()
    with Store.open(url) as store:
        insert_predictions(store, rows)
        total = count_predictions(store, "churn")
        received = {"label": True, "received_at": old, "entity": None, "event_time": None}
        store.write(lambda conn: conn.execute(sa.insert(t.outcomes), [
            {**outcome, **received} for outcome in outcomes]))  # fmt: skip

    planned = json.loads(
        cli(
            project, "predictions", "prune", "churn", "--older-than", "90d", "--dry-run", "--json"
        ).stdout
    )
    assert (planned["dry_run"], planned["served"], planned["rows"]) == (True, {"churn": 10}, 10)
    assert (planned["outcomes"], planned["unassigned_outcomes"]) == ({"churn": 1}, 0)
    done = cli(project, "predictions", "prune", "churn", "--older-than", "90d")
    assert "deleted" in done.stdout and "10" in done.stdout
    with Store.open(url) as store:
        assert count_predictions(store, "churn") == total - 10
    again = cli(project, "predictions", "prune", "--older-than", "90d")
    assert "(by prediction id alone)" in again.stdout
    old_outcomes = sa.select(sa.func.count()).where(t.outcomes.c.received_at <= old)
    with Store.open(url) as store:
        assert store.read(lambda conn: conn.execute(old_outcomes).scalar()) == 0
    last = cli(project, "predictions", "prune", "--older-than", "90d")
    assert "nothing to delete" in last.stdout

    unknown = cli(project, "predictions", "prune", "nope", "--older-than", "90d", check=False)
    assert (
        unknown.returncode == 1 and "nope" in unknown.stderr and "Traceback" not in unknown.stderr
    )
    unsaid = cli(project, "predictions", "prune", "churn", check=False)
    assert unsaid.returncode != 0 and "--older-than" in unsaid.stderr
    assert "Traceback" not in unsaid.stderr
    ahead = cli(project, "predictions", "prune", "--older-than", "2999-01-01", check=False)
    assert ahead.returncode == 1 and "in the future" in ahead.stderr
    assert "Traceback" not in ahead.stderr

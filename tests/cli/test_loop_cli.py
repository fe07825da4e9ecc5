"""The loop's commands as a user runs them: clear errors naming the key, runs recorded."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from mlprod._time import utc_now
from mlprod.registry import audit_log, clear_deployment, get_deployment
from mlprod.scheduling import active_canary
from mlprod.scheduling._decisions import close_canary
from mlprod.store import Store
from support import SMALL_SPEC, Project, cli_json, run_cli, trained


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return trained(tmp_path_factory.mktemp("loop-cli"))


def _with(project: Project, extra: str) -> None:
    (project.root / "mlprod.yaml").write_text(SMALL_SPEC + extra, encoding="utf-8")


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ('schedule: {jobs: {retrain: {cron: "61 * * * *"}}}', "schedule.jobs.retrain.cron",
         "invalid cron expression '61 * * * *'"),
        ('schedule: {timezone: Mars/Base, jobs: {monitor: {cron: "@daily"}}}',
         "schedule.timezone", "unknown time zone 'Mars/Base'"),
        ("schedule: {jobs: {score: {cron: '@daily', input: new.csv, output: out.parquet, "
         "model: nosuch@production}}}", "schedule.jobs.score.model", "no model 'nosuch'"),
        ("schedule: {jobs: {monitor: {cron: '@daily', triggers: [drift]}}}",
         "schedule.jobs.monitor.triggers", "only retrain runs on drift"),
    ],
)  # fmt: skip
def test_bad_schedules_name_the_key(project: Project, extra: str, key: str, expected: str) -> None:
    _with(project, extra + "\n")
    done = run_cli(project, "scheduler", "--once", check=False)
    assert done.returncode == 1, done.stderr
    assert key in done.stderr and expected in done.stderr
    assert "Traceback" not in done.stderr


def test_a_window_longer_than_the_data_is_a_recorded_failure(project: Project) -> None:
    _with(project, "retrain: {window: 4000d}\n")
    done = run_cli(project, "retrain", "churn", check=False)
    assert done.returncode == 3, done.stderr
    assert "retrain.window 4000d is longer than the data" in done.stderr
    assert "Traceback" not in done.stderr
    failed = cli_json(project, "jobs", "list", "--model", "churn", "--job", "retrain")["runs"][0]
    assert (failed["state"], failed["trigger"]) == ("failed", "manual")
    assert "retrain.window 4000d" in failed["error"]


@pytest.mark.slow
def test_jobs_run_show_and_schedule_show(project: Project) -> None:
    _with(project, 'schedule: {timezone: Europe/Berlin, jobs: {monitor: {cron: "0 6 * * *"}}}\n')
    run = cli_json(project, "jobs", "run", "monitor")
    assert (run["state"], run["job"], run["trigger"]) == ("succeeded", "monitor", "manual")
    assert set(run["output"]) >= {"alerts", "drifted"}
    shown = cli_json(project, "jobs", "show", str(run["id"]))
    assert shown == run
    schedule = cli_json(project, "schedule", "show")["jobs"]
    assert [(j["job"], j["cron"], j["timezone"]) for j in schedule] == [
        ("monitor", "0 6 * * *", "Europe/Berlin")
    ]
    upcoming = datetime.fromisoformat(schedule[0]["next"])
    assert upcoming.astimezone(ZoneInfo("Europe/Berlin")).hour == 6
    assert schedule[0]["last"]["id"] == run["id"]
    bad = run_cli(project, "jobs", "run", "dance", check=False)
    assert bad.returncode == 1 and "no job 'dance'" in bad.stderr


def test_export_needs_a_schedule(project: Project, tmp_path: Path) -> None:
    _with(project, "")
    done = run_cli(project, "schedule", "export", "--cron", check=False)
    assert done.returncode == 1 and "has no schedule.jobs to export" in done.stderr


@pytest.mark.slow
def test_retrain_prints_the_decision_with_its_figures(project: Project) -> None:
    _with(project, "retrain: {compare: holdout, canary: {weight: 20}}\n")
    decided = cli_json(project, "retrain", "churn")
    assert decided["run"]["state"] == "succeeded" and decided["kind"] == "retrain"
    assert decided["basis"] == "holdout" and decided["metric"] == "roc_auc"
    assert decided["low"] <= decided["difference"] <= decided["high"]
    assert decided["outcome"] in {"canary", "refused"}
    assert decided["reason"].startswith(f"v{decided['challenger']} ")
    with Store.from_settings(project.settings()) as store:
        deployment = get_deployment(store, "churn")
        canary = active_canary(store, "churn")
        if decided["outcome"] == "canary":  # the challenger took its share, through the registry
            assert deployment is not None and canary is not None
            shares = {route.version: route.weight for route in deployment.routes}
            assert shares == {decided["champion"]: 80, decided["challenger"]: 20}
            assert audit_log(store, "churn")[0].action == "deploy"
            close_canary(store, canary.id, state="rolled_back", reason="test", at=utc_now())
            clear_deployment(store, "churn", actor="test")
        else:
            assert deployment is None and canary is None


def test_the_score_job_scores_a_file_as_a_resumable_batch_job(project: Project) -> None:
    rows = (project.root / "customers.csv").read_text().splitlines()[:201]
    (project.root / "new.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _with(
        project,
        "schedule: {jobs: {score: {cron: '@daily', input: new.csv, output: out.parquet}}}\n",
    )
    run = cli_json(project, "jobs", "run", "score")
    assert run["state"] == "succeeded" and run["output"]["rows"] == 200
    assert run["output"]["job_id"].startswith("churn-score-") and run["output"]["version"] == 1
    scored = pd.read_parquet(project.root / "out.parquet")
    assert len(scored) == 200 and scored["prediction_id"].is_unique
    assert set(scored["model"]) == {"churn"} and scored["score"].between(0, 1).all()

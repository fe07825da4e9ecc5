"""Experiments from the command line: distributed tuning with a killed worker, search,
compare, re-run, profile, rank, and progress that degrades to plain lines."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlprod.pipelines._progress import Steps, TrialProgress
from mlprod.registry import get_run, list_runs, list_trials
from mlprod.store import Store
from support import SMALL_SPEC, Project, write_project

SLOW_TRIALS = SMALL_SPEC.replace(
    "candidates: [logistic_regression, lightgbm]",
    """candidates:
  - {type: random_forest, params: {n_estimators: 150}, search: {min_samples_leaf: [1, 30]}}
tuning: {trials: 6, folds: 3, pruning: false}""",
)


def mlprod(project: Project, *args: str, env: dict[str, str] | None = None,
           check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "mlprod", *args], cwd=project.root,
        env={**project.env(), **(env or {})}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"mlprod {' '.join(args)} failed:\n{done.stderr}")
    return done


def _running_trials(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM optuna.trials WHERE state = 'RUNNING'"
            return int(conn.exec_driver_sql(query).scalar() or 0)
    except sa.exc.ProgrammingError:
        return 0  # the schema is not there yet
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_worker_loses_no_trial_and_counts_none_twice(
    tmp_path: Path, postgres_url: str
) -> None:
    project = write_project(tmp_path, rows=3000, spec=SLOW_TRIALS)
    env = {**project.env(), "MLPROD_STORE": postgres_url, "MLPROD_TUNE_HEARTBEAT": "1"}
    command = [sys.executable, "-m", "mlprod", "tune", "--json"]
    log = tmp_path / "joiner.log"
    coordinator = subprocess.Popen(command, cwd=project.root, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
    joiner: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120
        run_id = None
        while run_id is None and time.monotonic() < deadline:
            with Store.open(postgres_url) as store:
                runs = list_runs(store, "churn")
            run_id = runs[0].id if runs else None
            time.sleep(0.2)
        assert run_id is not None
        with log.open("wb") as sink:
            joiner = subprocess.Popen(
                [sys.executable, "-m", "mlprod", "tune", "--join", run_id],
                cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=sink,
            )  # fmt: skip
        while _running_trials(postgres_url) < 2 and time.monotonic() < deadline:
            assert joiner.poll() is None, log.read_text()
            time.sleep(0.05)  # wait until both workers are inside a trial
        assert joiner.poll() is None, log.read_text()
        os.kill(joiner.pid, signal.SIGKILL)
        joiner.wait()
        out, err = coordinator.communicate(timeout=240)
    finally:
        for process in (joiner, coordinator):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    assert coordinator.returncode == 0, err
    assert json.loads(out)["run"] == run_id
    with Store.open(postgres_url) as store:
        trials = list_trials(store, run_id)
        assert get_run(store, run_id).status == "finished"
    done = [t for t in trials if t.state == "complete"]
    failed = [t for t in trials if t.state == "fail"]
    assert len(done) == 6  # exactly the budget: nothing lost, nothing counted twice
    assert len(failed) >= 1 and all(t.error is None for t in failed)  # killed, not broken
    retried = {t.retry_of: t for t in done if t.retry_of is not None}
    for lost in failed:  # retried with the same params (if it had drawn them before dying)
        origin = lost.number if lost.retry_of is None else lost.retry_of  # a retry lost too
        assert origin in retried
        assert lost.params.items() <= retried[origin].params.items()


@pytest.mark.slow
def test_tune_search_compare_rerun_from_the_cli(tmp_path: Path) -> None:
    spec = SLOW_TRIALS.replace("n_estimators: 150", "n_estimators: 30").replace(
        "trials: 6", "trials: 4"
    )
    project = write_project(tmp_path, rows=1500, spec=spec)
    tuned = mlprod(project, "tune", "--workers", "2")
    lines = [line for line in tuned.stderr.splitlines() if "random_forest trial" in line]
    assert lines and "ETA" in lines[-1] and "best 0." in lines[-1]  # plain lines, not a TTY
    assert any("trial 4/4" in line for line in lines)
    first = json.loads(mlprod(project, "runs", "list", "--json").stdout)["runs"][0]
    shown = json.loads(mlprod(project, "runs", "show", first["id"][:8], "--json").stdout)
    assert sum(t["state"] == "complete" for t in shown["trials"]) == 4
    child = json.loads(mlprod(project, "runs", "rerun", first["id"][:8], "--set",
                              "tuning.trials=2", "--json").stdout)  # fmt: skip
    listed = json.loads(mlprod(project, "runs", "list", "--where",
                               "params.model == 'random_forest' and roc_auc > 0.6",
                               "--since", "1d", "--sort", "-roc_auc", "--json").stdout)  # fmt: skip
    assert {r["id"] for r in listed["runs"]} == {first["id"], child["run"]}
    aucs = [r["metrics"]["roc_auc"]["value"] for r in listed["runs"]]
    assert aucs == sorted(aucs, reverse=True)
    compared = json.loads(mlprod(project, "runs", "compare", first["id"], child["run"],
                                 "--output", "cmp.html", "--json").stdout)  # fmt: skip
    assert {"key": "spec.tuning.trials", "a": 4, "b": 2} in compared["config"]
    html = (project.root / "cmp.html").read_text(encoding="utf-8")
    assert 'id="chart-roc_overlay"' in html and 'id="chart-pr_overlay"' in html
    bad = mlprod(project, "runs", "list", "--where", "model == exec('x')", check=False)
    assert bad.returncode == 1 and "not allowed" in bad.stderr and "Traceback" not in bad.stderr
    typo = mlprod(project, "runs", "rerun", first["id"], "--set", "tuning.trails=3", check=False)
    assert typo.returncode == 1 and "tuning.trails: unknown key" in typo.stderr


def test_data_profile_and_features_rank_print_json(tmp_path: Path) -> None:
    project = write_project(tmp_path, rows=1200)
    profile = json.loads(mlprod(project, "data", "profile", "--output", "p.html", "--json").stdout)
    assert profile["rows"] == 1200 and (project.root / "p.html").is_file()
    assert [s["column"] for s in profile["suspects"]] == ["customer_id"]
    ranked = json.loads(mlprod(project, "features", "rank", "--json").stdout)["features"]
    assert ranked[0]["rank"] == 1 and len(ranked) == 11


def test_progress_is_live_in_a_terminal_and_plain_elsewhere() -> None:
    from rich.console import Console

    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    steps = Steps(terminal)
    with steps.live("tuning"):
        progress = TrialProgress(steps, "lightgbm", 10)
        progress.update(4, 0.8123, "complete")
        assert steps._status is not None
        shown = str(steps._status.renderable.text)  # type: ignore[attr-defined]
    assert "lightgbm trial 4/10 complete, best 0.8123" in shown and "ETA" in shown
    plain = Console(file=io.StringIO(), force_terminal=False, width=200)
    TrialProgress(Steps(plain), "xgboost", 3).update(1, None)
    assert "xgboost trial 1/3, best -" in plain.file.getvalue()  # type: ignore[attr-defined]

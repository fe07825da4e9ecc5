"""The schedule exported for other schedulers: crontab lines and an Airflow DAG that loads.

The DAG is loaded by Airflow itself. Airflow pins web libraries mlprod uses in other
versions, so it lives in an environment of its own: ``MLPROD_AIRFLOW_PYTHON`` names its
interpreter (CI builds one, ``.venv-airflow``); without it the test skips, under CI it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlprod.scheduling import Project, crontab_lines, list_job_runs, write_airflow_dag
from mlprod.store import Store
from support import need_service, trained

SCHEDULE = """
schedule:
  timezone: Europe/Berlin
  jobs:
    retrain: {cron: "0 3 * * 1", triggers: [drift, new_data]}
    monitor: {cron: "*/15 * * * *", timezone: UTC, retries: 0}
"""
LOAD_DAGS = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dags = {
    dag_id: {
        "cron": dag.timetable.expression,
        "timezone": str(dag.timetable.timezone),
        "tasks": {t.task_id: t.bash_command for t in dag.tasks},
        "retries": {t.task_id: t.retries for t in dag.tasks},
    }
    for dag_id, dag in bag.dags.items()
}
print(json.dumps({"errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": dags}))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = trained(tmp_path_factory.mktemp("export")).root
    spec = root / "mlprod.yaml"
    spec.write_text(spec.read_text() + SCHEDULE, encoding="utf-8")
    return Project.load(spec)


def test_crontab_lines_call_the_same_cli_steps(project: Project) -> None:
    url = "postgresql+psycopg://db/mlprod"
    lines = crontab_lines(project, store=url)
    spec = str(project.path)
    assert lines[1:] == [
        "CRON_TZ=Europe/Berlin",
        f"0 3 * * 1 MLPROD_STORE={url} mlprod jobs run retrain --spec {spec}",
        "CRON_TZ=UTC",
        f"*/15 * * * * MLPROD_STORE={url} mlprod jobs run monitor --spec {spec}",
        f"*/5 * * * * MLPROD_STORE={url} mlprod scheduler --once --triggers-only --spec {spec}",
    ]


def _airflow_python() -> str:
    root = Path(__file__).resolve().parents[2]
    candidate = os.environ.get("MLPROD_AIRFLOW_PYTHON") or str(root / ".venv-airflow/bin/python")
    if not Path(candidate).exists():
        need_service("Airflow", f"no Airflow environment at {candidate} (MLPROD_AIRFLOW_PYTHON)")
    return candidate


def test_the_airflow_dag_loads_in_airflow_and_its_tasks_run(
    project: Project, tmp_path: Path
) -> None:
    python = _airflow_python()
    store = str(project.path.parent / ".mlprod")
    path = write_airflow_dag(project, tmp_path / "dags", store=store)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    done = subprocess.run(
        [python, "-c", LOAD_DAGS, str(path.parent)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=True,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["errors"] == {}
    dags = loaded["dags"]
    assert set(dags) == {"mlprod_churn_retrain", "mlprod_churn_monitor", "mlprod_churn_triggers"}
    assert dags["mlprod_churn_retrain"]["cron"] == "0 3 * * 1"
    assert dags["mlprod_churn_retrain"]["timezone"] == "Europe/Berlin"
    assert dags["mlprod_churn_monitor"]["retries"] == {"monitor": 0}
    command = dags["mlprod_churn_monitor"]["tasks"]["monitor"]
    assert command == f"mlprod jobs run monitor --spec {project.path}"
    # the task's command is the CLI step: run it as Airflow would, and see it recorded
    bin_dir = str(Path(sys.executable).parent)
    ran = subprocess.run(
        command,
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MLPROD_STORE": store},
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    with Store.open(f"sqlite:///{project.path.parent / '.mlprod' / 'mlprod.db'}") as store:
        runs = list_job_runs(store, "churn", job="monitor")
    assert [(r.trigger, r.state) for r in runs] == [("manual", "succeeded")]

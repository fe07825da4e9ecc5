"""The model page shows the loop: schedule, last and next runs, champion, canary, decisions."""

from __future__ import annotations

from pathlib import Path

import httpx

from mlprod._time import utc_now
from mlprod.pipelines import promote, train
from mlprod.scheduling import LoopContext, Project, run_now
from mlprod.scheduling._decisions import open_canary, record_decision
from mlprod.store import Store, open_artifacts
from support import SMALL_SPEC, Server, write_project

SCHEDULE = """
schedule:
  timezone: Europe/Berlin
  jobs:
    retrain: {cron: "0 3 * * 1", triggers: [drift, performance]}
    monitor: {cron: "*/15 * * * *"}
"""


def test_the_model_page_shows_the_loop(tmp_path: Path) -> None:
    project = write_project(tmp_path / "loop", rows=1500, spec=SMALL_SPEC + SCHEDULE)
    settings = project.settings()
    for _ in range(2):
        train(project.spec, settings=settings)
    promote("churn", 1, "production", settings=settings, actor="test")
    with Store.from_settings(settings) as store:
        context = LoopContext(store, open_artifacts(settings), settings)
        monitored = run_now(Project.load(project.spec), "monitor", context)
        record_decision(
            store,
            at=utc_now(),
            model="churn",
            kind="retrain",
            outcome="canary",
            champion=1,
            challenger=2,
            metric="roc_auc",
            champion_value=0.81,
            challenger_value=0.84,
            difference=0.03,
            low=0.01,
            high=0.05,
            reason="v2 is not worse than v1 on 400 holdout rows",
        )
        open_canary(store, "churn", champion=1, challenger=2, weight=10, at=utc_now())
    board = Server(project, command="dashboard")
    try:
        board.wait_ready()
        page = httpx.get(board.url + "/ui/models/churn", headers={"accept": "text/html"}).text
        data = httpx.get(board.url + "/ui/api/models/churn").json()["loop"]
    finally:
        board.stop()
    assert "The loop" in page and 'data-job="monitor"' in page and 'data-job="retrain"' in page
    assert "v2 is not worse than v1 on 400 holdout rows" in page
    assert "v2 at 10.0%" in page
    jobs = {job["kind"]: job for job in data["jobs"]}
    assert jobs["retrain"]["triggers"] == ["drift", "performance"]
    assert jobs["retrain"]["timezone"] == "Europe/Berlin" and jobs["retrain"]["next"]
    assert jobs["monitor"]["last"]["id"] == monitored.id
    assert jobs["monitor"]["last"]["state"] == "succeeded"
    assert jobs["retrain"]["last"] is None
    assert data["champion"] == 1
    assert data["canary"]["challenger"] == 2 and data["canary"]["labels"] == {
        "champion": 0,
        "challenger": 0,
    }
    assert [d["outcome"] for d in data["decisions"]] == ["canary"]

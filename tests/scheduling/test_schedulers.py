"""Several real `mlprod scheduler` processes on one store, SQLite and PostgreSQL.

Each run is executed by exactly one of them; one killed with ``kill -9`` mid-job loses its
lease, and another scheduler abandons the run and retries it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlprod.scheduling import JobRun, enqueue, list_job_runs
from mlprod.store import Store
from support import SMALL_SPEC, Project, trained

SCHEDULE = """
schedule:
  retries: 1
  retry_delay: 1s
  jobs:
    retrain: {cron: "0 0 1 1 *"}
    monitor: {cron: "0 0 1 1 *"}
"""
TICK, LEASE = "0.2", "3"  # a short lease, so a killed scheduler's runs are taken over soon


@pytest.fixture
def project(tmp_path: Path, store_url: str) -> Project:
    """churn@1 in production, on this backend, with a schedule that never fires by itself."""
    root = trained(tmp_path / "project", store=store_url).root
    (root / "mlprod.yaml").write_text(SMALL_SPEC + SCHEDULE, encoding="utf-8")
    return Project(root, store_url)


@contextmanager
def schedulers(
    project: Project, count: int, lease: str = LEASE
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {**project.env(), "MLPROD_SCHEDULER_TICK": TICK, "MLPROD_SCHEDULER_LEASE": lease}
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "mlprod", "scheduler"],
            cwd=project.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            process.wait(timeout=60)


def runs(store: Store, job: str) -> list[JobRun]:
    return sorted(list_job_runs(store, "churn", job=job, limit=100), key=lambda r: r.id)


def wait_for(condition: Callable[[], bool], store: Store, job: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        shown = [(r.attempt, r.state, r.owner, r.error) for r in runs(store, job)]
        assert time.monotonic() < deadline, f"the schedulers did not get there in time: {shown}"
        time.sleep(0.1)


def test_two_schedulers_run_each_job_once(project: Project, store_url: str) -> None:
    now = datetime.now(UTC)
    with Store.open(store_url) as store:
        for i in range(8):
            enqueue(
                store, "churn", "monitor", trigger="manual", key=f"manual:{i}", scheduled_for=now
            )
        with schedulers(project, 2, lease="60"):  # nothing dies here: a slow tick must not
            wait_for(  # let a lease lapse and a run be taken over (attempt 2)
                lambda: all(r.state == "succeeded" for r in runs(store, "monitor")),
                store,
                "monitor",
            )
        done = runs(store, "monitor")
    assert len(done) == 8 and {r.attempt for r in done} == {1}  # no run twice, none retried
    assert all(r.owner and r.ended_at for r in done)


@pytest.mark.slow
def test_a_killed_scheduler_loses_its_lease_and_another_takes_over(
    project: Project, store_url: str
) -> None:
    with Store.open(store_url) as store:
        enqueue(
            store,
            "churn",
            "retrain",
            trigger="manual",
            key="manual:takeover",
            scheduled_for=datetime.now(UTC),
        )
        with schedulers(project, 1) as (first,):
            wait_for(lambda: runs(store, "retrain")[0].state == "running", store, "retrain")
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            killed_owner = runs(store, "retrain")[0].owner
        assert runs(store, "retrain")[0].state == "running"  # nobody knows it died yet
        with schedulers(project, 1):
            wait_for(
                lambda: any(r.state == "succeeded" for r in runs(store, "retrain")),
                store,
                "retrain",
            )
        abandoned, retried = runs(store, "retrain")
    assert (abandoned.attempt, abandoned.state, abandoned.owner) == (1, "abandoned", killed_owner)
    assert "stopped renewing its lease" in (abandoned.error or "")
    assert (retried.attempt, retried.state, retried.trigger_key) == (
        2,
        "succeeded",
        "manual:takeover",
    )
    assert retried.owner != killed_owner
    assert retried.output["outcome"] in {"canary", "refused"}

"""The whole loop over simulated time, against a real server with live traffic.

The relation between the inputs and the label changes at a known point. The loop must
notice (a performance alert from live outcomes), retrain on the new regime, send the
challenger to canary, and promote it on the canary's outcomes, while not one request
fails. A deliberately bad challenger (its labels shuffled) must be refused, with the
champion serving throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loop_scenario import MODEL, Traffic, change_regime, drive, write_loop_project
from mlprod._time import ManualClock, utc_now
from mlprod.pipelines import promote, train
from mlprod.registry import alias_map, get_deployment
from mlprod.scheduling import LoopContext, Project, Scheduler, list_decisions, list_job_runs
from mlprod.settings import Settings
from mlprod.store import Store, open_artifacts
from support import Receiver, Server

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def _start(tmp_path: Path, receiver: Receiver, *, shuffle: bool) -> tuple[Any, ...]:
    now = pd.Timestamp.now(tz="UTC").floor("s")
    project = write_loop_project(tmp_path / "loop", now=now)
    run = train(project.spec, store=project.store)
    promote(MODEL, run.version, "production", store=project.store, actor="test")
    server = Server(project, env={"MLPROD_MONITOR_FLUSH": "0.5"})
    server.wait_ready()
    settings = Settings(store=project.store, webhook=receiver.url, webhook_allow_private=True)
    store = Store.from_settings(settings)
    clock = ManualClock(utc_now())
    context = LoopContext(store, open_artifacts(settings), settings, clock=clock, actor="loop")
    change_regime(project, now=now, shuffle=shuffle)  # the known point of change
    traffic = Traffic.of_regime(server.url, regime=1)
    traffic.start()
    scheduler = Scheduler([Project.load(project.spec)], context, workers=0)
    return project, server, store, clock, traffic, scheduler


def _where(store: Store, traffic: Traffic) -> str:
    """The loop's decisions, retrain runs and traffic, for a failure message."""
    decisions = [(d.kind, d.outcome, d.reason) for d in list_decisions(store, MODEL)]
    runs = list_job_runs(store, MODEL)
    retrains = [(r.trigger, r.state, r.error) for r in runs if r.job == "retrain"]
    failed = [(r.job, r.error) for r in runs if r.error and r.job != "retrain"][-3:]
    return (
        f"decisions {decisions}; retrain runs {retrains}; {len(runs)} job runs, the last "
        f"failures {failed}; answered {traffic.answered} by version {traffic.by_version}; "
        f"request failures {traffic.failures[:3]}"
    )


def test_the_loop_notices_retrains_canaries_and_promotes(
    tmp_path: Path, receiver: Receiver
) -> None:
    _, server, store, clock, traffic, scheduler = _start(tmp_path, receiver, shuffle=False)
    try:
        changed = clock.now()
        promoted = lambda: alias_map(store, MODEL).get("production") == 2  # noqa: E731
        drive(scheduler, clock, promoted, explain=lambda: _where(store, traffic))
        decided = clock.now()
        traffic.stop()
    finally:
        traffic.stop()
        server.stop()
    decisions = sorted(list_decisions(store, MODEL), key=lambda d: d.id)
    assert [(d.kind, d.outcome) for d in decisions] == [
        ("retrain", "canary"),
        ("canary", "promoted"),
    ]
    retrained, canary = decisions
    assert retrained.challenger == 2 and retrained.champion == 1
    assert retrained.difference is not None and retrained.low is not None and retrained.low > 0
    assert canary.details["labels"]["challenger"] >= 60
    assert get_deployment(store, MODEL) is None  # the canary's routes are gone
    triggers = {r.trigger for r in list_job_runs(store, MODEL, job="retrain")}
    assert triggers == {"performance"}
    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.by_version.get(2, 0) > 0 and traffic.by_version.get(1, 0) > 0
    posted = [d for d in receiver.received if d.get("event") == "decision"]
    assert [d["outcome"] for d in posted] == ["canary", "promoted"]
    assert decided - changed < pd.Timedelta(days=3)
    store.close()


def test_a_bad_challenger_is_refused_and_the_champion_keeps_serving(
    tmp_path: Path, receiver: Receiver
) -> None:
    _, server, store, clock, traffic, scheduler = _start(tmp_path, receiver, shuffle=True)
    try:
        refused = lambda: any(d.outcome == "refused" for d in list_decisions(store, MODEL))  # noqa: E731
        drive(scheduler, clock, refused, explain=lambda: _where(store, traffic))
        for _ in range(3):  # the alert stays open; it must not retrain again for it
            scheduler.tick()
            clock.advance(pd.Timedelta(minutes=10).to_pytimedelta())
    finally:
        traffic.stop()
        server.stop()
    decisions = list_decisions(store, MODEL)
    assert [(d.kind, d.outcome) for d in decisions] == [("retrain", "refused")]
    assert "failed its gates" in decisions[0].reason
    assert alias_map(store, MODEL) == {"production": 1}
    assert get_deployment(store, MODEL) is None
    assert len(list_job_runs(store, MODEL, job="retrain")) == 1
    assert traffic.failures == [] and set(traffic.by_version) == {1}
    store.close()

"""When jobs are due: cron slots with catch-up or skip, alerts, new data; each key once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlprod.monitoring._alerts import close_alerts, raise_alert
from mlprod.scheduling import Job, claim, enqueue, finish
from mlprod.scheduling._triggers import SourceSignatures, alert_due, cron_due, data_due
from mlprod.spec import JobSpec
from mlprod.store import Store

START = datetime(2026, 12, 7, 9, 5, tzinfo=UTC)  # a Monday


def job(
    cron: str | None = "0 * * * *", *, missed: str = "catch_up", triggers: tuple[str, ...] = ()
) -> Job:
    return Job(
        model="churn",
        kind="retrain",
        cron=cron,
        timezone="UTC",
        missed=missed,
        retries=0,
        retry_delay=timedelta(0),
        triggers=triggers,
        spec=JobSpec(),
    )


def _ran(
    store: Store,
    key: str,
    at: datetime,
    *,
    trigger: str = "cron",
    output: dict[str, Any] | None = None,
) -> None:
    run = enqueue(store, "churn", "retrain", trigger=trigger, key=key, scheduled_for=at)
    assert run is not None
    claim(store, run.id, owner="t", lease=timedelta(minutes=1), now=at)
    finish(store, run.id, owner="t", state="succeeded", now=at, output=output or {})


def test_cron_waits_for_the_first_slot_after_start_then_runs_each_slot_once(store: Store) -> None:
    hourly = job()
    assert cron_due(store, hourly, START, first_seen=START) is None  # 09:00 was before start
    due = cron_due(store, hourly, START.replace(minute=0) + timedelta(hours=1), first_seen=START)
    assert due is not None and due.key == "cron:2026-12-07T10:00:00+00:00"
    _ran(store, due.key, due.scheduled_for)
    later = START.replace(minute=20) + timedelta(hours=1)
    assert cron_due(store, hourly, later, first_seen=START) is None  # 10:00 ran already


def test_after_downtime_catch_up_runs_the_newest_missed_slot_once_and_skip_does_not(
    store: Store,
) -> None:
    _ran(store, "cron:2026-12-07T09:00:00+00:00", START.replace(minute=0))
    back = START + timedelta(hours=5, minutes=30)  # down from 09:05 to 14:35
    caught = cron_due(store, job(), back, first_seen=back)
    assert caught is not None and caught.scheduled_for == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    assert cron_due(store, job(missed="skip"), back, first_seen=back) is None
    on_time = back.replace(minute=0, second=30) + timedelta(hours=1)
    assert cron_due(store, job(missed="skip"), on_time, first_seen=back) is not None


def test_each_open_alert_of_a_listened_kind_is_one_reason(store: Store) -> None:
    drift, _ = raise_alert(store, "churn", "drift", "plan", message="psi 0.3", details={})
    raise_alert(store, "churn", "errors", "error_rate", message="8%", details={})
    found = alert_due(store, job(triggers=("drift", "performance")))
    assert [(d.trigger, d.key) for d in found] == [("drift", f"alert:{drift.id}")]
    assert alert_due(store, job(triggers=("new_data",))) == []
    close_alerts(store, "churn", "drift", still_failing=set())
    assert alert_due(store, job(triggers=("drift",))) == []


def test_new_data_fires_when_the_source_changes(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    signatures = SourceSignatures()
    first = signatures.signature(str(source), START)
    listening = job(cron=None, triggers=("new_data",))
    assert data_due(store, listening, START, signature=first, baseline=first) is None
    source.write_text("a,b\n1,2\n3,4\n")
    changed = signatures.signature(str(source), START)
    due = data_due(store, listening, START, signature=changed, baseline=first)
    assert due is not None and due.key == f"data:{changed}" and changed != first
    _ran(store, due.key, START, trigger="new_data", output={"source": changed})
    assert data_due(store, listening, START, signature=changed, baseline=first) is None

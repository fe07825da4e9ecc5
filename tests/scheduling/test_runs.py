"""Job runs in the store, on SQLite and PostgreSQL: once per key, one owner, leases expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlprod.scheduling import claim, enqueue, finish, get_job_run, list_job_runs
from mlprod.scheduling._runs import due, reap, renew
from mlprod.store import Store

T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def test_a_key_is_enqueued_once_and_claimed_by_one_owner(store: Store) -> None:
    first = enqueue(store, "churn", "retrain", trigger="cron", key="cron:a", scheduled_for=T0)
    again = enqueue(store, "churn", "retrain", trigger="cron", key="cron:a", scheduled_for=T0)
    assert first is not None and first.state == "pending" and first.attempt == 1
    assert again is None  # a second scheduler noticing the same slot adds nothing
    assert claim(store, first.id, owner="a", lease=LEASE, now=T0 - timedelta(seconds=1)) is None
    won = claim(store, first.id, owner="a", lease=LEASE, now=T0)
    lost = claim(store, first.id, owner="b", lease=LEASE, now=T0)
    assert won is not None and won.owner == "a" and won.lease_until == T0 + LEASE
    assert lost is None
    assert due(store, T0) == []


def test_finish_records_the_outcome_only_for_the_owner(store: Store) -> None:
    run = enqueue(store, "churn", "score", trigger="manual", key="manual:1", scheduled_for=T0)
    assert run is not None
    assert claim(store, run.id, owner="a", lease=LEASE, now=T0) is not None
    assert finish(store, run.id, owner="b", state="succeeded", now=T0) is None
    done = finish(store, run.id, owner="a", state="failed", now=T0 + timedelta(seconds=5),
                  error="input missing", output={"rows": 0})  # fmt: skip
    assert done is not None and done.state == "failed" and done.error == "input missing"
    assert get_job_run(store, run.id).output == {"rows": 0}


def test_an_expired_lease_is_reaped_and_a_renewed_one_is_not(store: Store) -> None:
    held = enqueue(store, "churn", "retrain", trigger="cron", key="cron:h", scheduled_for=T0)
    dead = enqueue(store, "churn", "monitor", trigger="cron", key="cron:d", scheduled_for=T0)
    assert held is not None and dead is not None
    claim(store, held.id, owner="alive", lease=LEASE, now=T0)
    claim(store, dead.id, owner="killed", lease=LEASE, now=T0)
    later = T0 + LEASE + timedelta(seconds=1)
    assert renew(store, held.id, owner="alive", until=later + LEASE)
    reaped = reap(store, later)
    assert [r.id for r in reaped] == [dead.id]
    assert reaped[0].state == "abandoned" and "killed stopped renewing" in (reaped[0].error or "")
    assert not renew(store, dead.id, owner="killed", until=later + LEASE)  # it is not theirs
    assert finish(store, dead.id, owner="killed", state="succeeded", now=later) is None
    assert get_job_run(store, held.id).state == "running"


def test_retries_keep_the_key_and_wait(store: Store) -> None:
    enqueue(store, "churn", "score", trigger="cron", key="cron:r", scheduled_for=T0)
    retry = enqueue(store, "churn", "score", trigger="cron", key="cron:r", scheduled_for=T0,
                    not_before=T0 + timedelta(minutes=5), attempt=2)  # fmt: skip
    assert retry is not None and retry.attempt == 2
    assert [r.attempt for r in due(store, T0)] == [1]
    assert sorted(r.attempt for r in due(store, T0 + timedelta(minutes=5))) == [1, 2]
    runs = list_job_runs(store, "churn", job="score", triggers=["cron"])
    assert {r.attempt for r in runs} == {1, 2}


def test_one_run_of_a_job_at_a_time(store: Store) -> None:
    cron = enqueue(store, "churn", "retrain", trigger="cron", key="cron:x", scheduled_for=T0)
    alert = enqueue(store, "churn", "retrain", trigger="drift", key="alert:1", scheduled_for=T0)
    other = enqueue(store, "churn", "monitor", trigger="cron", key="cron:y", scheduled_for=T0)
    assert cron is not None and alert is not None and other is not None
    assert claim(store, cron.id, owner="a", lease=LEASE, now=T0) is not None
    assert claim(store, alert.id, owner="b", lease=LEASE, now=T0) is None  # retrain is busy
    assert claim(store, other.id, owner="b", lease=LEASE, now=T0) is not None  # another job
    finish(store, cron.id, owner="a", state="succeeded", now=T0)
    assert claim(store, alert.id, owner="b", lease=LEASE, now=T0) is not None

"""Alerts: one open row per (model, kind, subject), however many processes see the incident.

Proves on SQLite and PostgreSQL that raising an open key again refreshes the same row,
that closing frees the key so the next incident is a new row, that `close_alerts` keeps
what is still failing, that `list_alerts` orders and filters as documented, and that
concurrent raisers of one key open exactly one alert between them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from mlprod.monitoring._alerts import AlertKind, AlertRecord, close_alerts, list_alerts, raise_alert
from mlprod.store._store import Store


def alert(
    store: Store,
    subject: str = "monthly_charges",
    *,
    model: str = "churn",
    kind: AlertKind = "drift",
    psi: float = 0.41,
    version: int | None = 3,
) -> tuple[AlertRecord, bool]:
    details = {"psi": psi, "bins": [0.1, float("nan")]}
    return raise_alert(
        store, model, kind, subject, message=f"PSI {psi} > 0.2", details=details, version=version
    )


def keys(alerts: list[AlertRecord]) -> list[tuple[str, str, str]]:
    return [(a.model, a.kind, a.subject) for a in alerts]


def near_now(moment: datetime) -> bool:
    return moment.tzinfo is not None and abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


def test_raising_an_open_key_again_refreshes_the_same_row(store: Store) -> None:
    first, opened = alert(store, psi=0.41)
    assert opened
    assert (first.model, first.kind, first.subject, first.version) == (
        "churn", "drift", "monthly_charges", 3,
    )  # fmt: skip
    assert first.open and first.closed_at is None
    assert first.message == "PSI 0.41 > 0.2"
    assert first.details == {"psi": 0.41, "bins": [0.1, None]}  # stored as plain JSON
    assert near_now(first.opened_at) and first.last_seen_at == first.opened_at

    second, opened = alert(store, psi=0.55, version=4)
    assert not opened
    assert second.id == first.id
    assert second.opened_at == first.opened_at
    assert second.last_seen_at > first.last_seen_at
    assert (second.message, second.details, second.version) == (
        "PSI 0.55 > 0.2", {"psi": 0.55, "bins": [0.1, None]}, 4,
    )  # fmt: skip
    assert list_alerts(store) == [second]


def test_other_models_kinds_and_subjects_are_other_alerts(store: Store) -> None:
    raised = [
        alert(store),
        alert(store, "tenure"),
        alert(store, kind="performance"),
        alert(store, model="upsell"),
        alert(store, "monthly/charges"),  # a "/" in the subject cannot collide with a key
    ]
    assert all(opened for _, opened in raised)
    assert len({record.id for record, _ in raised}) == 5
    assert len(list_alerts(store, open_only=True)) == 5


def test_closing_frees_the_key_so_the_next_incident_is_a_new_row(store: Store) -> None:
    first, _ = alert(store)
    [closed] = close_alerts(store, "churn", "drift", still_failing=set())
    assert closed.id == first.id
    assert not closed.open and closed.closed_at is not None
    assert first.opened_at <= closed.closed_at and near_now(closed.closed_at)
    assert close_alerts(store, "churn", "drift", still_failing=set()) == []  # nothing open

    again, opened = alert(store, psi=0.9)
    assert opened
    assert again.id != first.id
    assert again.open and again.opened_at >= closed.closed_at
    assert [a.id for a in list_alerts(store, open_only=True)] == [again.id]
    history = list_alerts(store)
    assert [a.id for a in history] == [again.id, first.id]
    assert history[1].closed_at == closed.closed_at  # the old incident keeps its record
    assert history[1].message == "PSI 0.41 > 0.2"


def test_close_alerts_keeps_subjects_that_are_still_failing(store: Store) -> None:
    for subject in ("plan", "tenure", "monthly_charges"):
        alert(store, subject)
    alert(store, "roc_auc", kind="performance")
    alert(store, "plan", model="upsell")

    closed = close_alerts(store, "churn", "drift", still_failing={"tenure", "not-open"})
    assert sorted(a.subject for a in closed) == ["monthly_charges", "plan"]
    assert all(a.model == "churn" and a.kind == "drift" and not a.open for a in closed)
    assert sorted(keys(list_alerts(store, open_only=True))) == [
        ("churn", "drift", "tenure"),
        ("churn", "performance", "roc_auc"),
        ("upsell", "drift", "plan"),
    ]
    still, opened = alert(store, "tenure")  # the one kept open is still the same incident
    assert not opened
    assert still.id in {a.id for a in list_alerts(store, open_only=True)}


def test_list_alerts_orders_newest_first_and_filters(store: Store) -> None:
    raised = [alert(store, subject)[0] for subject in ("a", "b", "c", "d")]
    other, _ = alert(store, "a", model="upsell")
    close_alerts(store, "churn", "drift", still_failing={"a", "c"})  # closes b and d

    newest_first = [other, *reversed(raised)]
    assert [a.id for a in list_alerts(store)] == [a.id for a in newest_first]
    assert [a.subject for a in list_alerts(store, "churn")] == ["d", "c", "b", "a"]
    assert [a.subject for a in list_alerts(store, "churn", open_only=True)] == ["c", "a"]
    assert keys(list_alerts(store, open_only=True)) == [
        ("upsell", "drift", "a"),
        ("churn", "drift", "c"),
        ("churn", "drift", "a"),
    ]
    assert [a.subject for a in list_alerts(store, "churn", limit=2)] == ["d", "c"]
    assert list_alerts(store, limit=0) == []
    assert list_alerts(store, "nosuch") == []
    opened_at = [a.opened_at for a in list_alerts(store)]
    assert opened_at == sorted(opened_at, reverse=True)


def test_concurrent_raisers_of_one_key_open_exactly_one_alert(store: Store) -> None:
    raisers = 8
    barrier = threading.Barrier(raisers)

    def raiser(i: int) -> tuple[AlertRecord, bool]:
        barrier.wait()
        return alert(store, psi=i / 100)

    with ThreadPoolExecutor(raisers) as pool:
        results = list(pool.map(raiser, range(raisers)))
    assert sum(opened for _, opened in results) == 1  # exactly one caller opened it
    assert {record.id for record, _ in results} == {results[0][0].id}
    [stored] = list_alerts(store)
    assert stored.open
    assert stored in [record for record, _ in results]  # the row as its last writer left it

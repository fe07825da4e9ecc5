"""Alert rules over a report, and webhooks that cannot be turned against the network."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mlprod.errors import SpecError
from mlprod.monitoring import (
    DriftRow,
    ErrorWindow,
    MonitoringReport,
    Performance,
    check_alerts,
    check_webhook,
    list_alerts,
    post_webhook,
)
from mlprod.spec import Gate, MonitorSpec
from mlprod.store import Store
from support import Receiver

WINDOW = "2026-11-30T10:00:00+00:00"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """Alert rules are backend-agnostic; the alert store's contract runs on both backends."""
    return sqlite_store


def report(
    *,
    drift: Sequence[DriftRow] = (),
    performance: Sequence[Performance] = (),
    errors: Sequence[ErrorWindow] = (),
) -> MonitoringReport:
    """A real report holding only the rows a rule reads."""
    return MonitoringReport(
        model="churn",
        window="1h",
        since=WINDOW,
        until=WINDOW,
        versions=[],
        traffic=[],
        performance=list(performance),
        live=[],
        drift=list(drift),
        errors=list(errors),
        alerts=[],
        outcomes={},
    )


def drift_row(feature: str, flagged: bool, count: int = 1000, window: str = WINDOW) -> DriftRow:
    return DriftRow(
        version=3,
        feature=feature,
        window_start=window,
        count=count,
        psi=0.3 if flagged else 0.01,
        js=0.1,
        p_value=0.001,
        test="chi2",
        null_rate=0.0,
        reference_null_rate=0.0,
        unseen_rate=0.0,
        flagged=flagged,
        reasons=["psi 0.300 > 0.1"] if flagged else [],
    )


def test_drift_opens_once_per_incident_and_resolves(store: Store) -> None:
    receiver = Receiver()
    settings = MonitorSpec()
    try:
        first = report(drift=[drift_row("plan", True), drift_row("region", False)])
        opened, closed = check_alerts(
            store, first, settings=settings, gates={}, webhook=receiver.url, allow_private=True
        )
        again, _ = check_alerts(
            store, first, settings=settings, gates={}, webhook=receiver.url, allow_private=True
        )
        assert [a.subject for a in opened] == ["plan"] and again == [] and closed == []
        assert [a.subject for a in list_alerts(store, "churn", open_only=True)] == ["plan"]
        cleared = report(drift=[drift_row("plan", False)])
        _, closed = check_alerts(
            store, cleared, settings=settings, gates={}, webhook=receiver.url, allow_private=True
        )
    finally:
        receiver.close()
    assert [a.subject for a in closed] == ["plan"] and closed[0].closed_at is not None
    assert list_alerts(store, "churn", open_only=True) == []
    assert [(d["state"], d["subject"]) for d in receiver.received] == [
        ("open", "plan"),
        ("resolved", "plan"),
    ]
    assert receiver.received[0]["message"].startswith("plan drifted in v3")


def test_a_small_window_is_not_judged(store: Store) -> None:
    small = report(drift=[drift_row("plan", True, count=100)])
    opened, _ = check_alerts(store, small, settings=MonitorSpec(), gates={})
    assert opened == []


def test_performance_alerts_only_when_the_upper_bound_is_under_the_gate(store: Store) -> None:
    gates = {"recall": Gate(op=">=", value=0.6), "precision": Gate(op=">=", value=0.5)}
    row = Performance(
        version=3,
        window_start=WINDOW,
        predictions=1000,
        estimated=False,
        n_labelled=400,
        recall=0.45,
        recall_high=0.52,
        precision=0.48,
        precision_high=0.55,
    )
    estimated = row.model_copy(
        update={
            "window_start": "2026-11-30T11:00:00+00:00",
            "estimated": True,
            "recall_high": 0.1,
        }
    )
    opened, _ = check_alerts(
        store, report(performance=[row, estimated]), settings=MonitorSpec(), gates=gates
    )
    assert [a.subject for a in opened] == ["recall@3"]  # precision 0.55 may still reach 0.5
    assert "at most 0.520" in opened[0].message and opened[0].version == 3


def test_error_rate_alert(store: Store) -> None:
    busy = ErrorWindow(window_start=WINDOW, count=80, codes={"invalid_input": 80}, rate=0.08)
    opened, _ = check_alerts(store, report(errors=[busy]), settings=MonitorSpec(), gates={})
    assert [a.subject for a in opened] == ["error_rate"] and "8.0%" in opened[0].message
    calm = busy.model_copy(
        update={"count": 2, "rate": 0.002, "window_start": "2026-11-30T11:00:00+00:00"}
    )
    _, closed = check_alerts(store, report(errors=[busy, calm]), settings=MonitorSpec(), gates={})
    assert [a.subject for a in closed] == ["error_rate"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
    ],
)
def test_webhooks_may_not_reach_private_addresses_unless_allowed(url: str) -> None:
    with pytest.raises(SpecError, match="private or local address"):
        check_webhook(url)
    check_webhook(url, allow_private=True)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///x"])
def test_webhooks_must_be_http_urls(url: str) -> None:
    with pytest.raises(SpecError, match="http"):
        check_webhook(url, allow_private=True)


def test_a_webhook_redirect_is_not_followed() -> None:
    target = Receiver()
    redirecting = Receiver(redirect=target.url)
    try:
        delivered = post_webhook(redirecting.url, {"state": "open"}, allow_private=True)
    finally:
        redirecting.close()
        target.close()
    assert delivered is False and target.received == []
    assert redirecting.received == [{"state": "open"}]

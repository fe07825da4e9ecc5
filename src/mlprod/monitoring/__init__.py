"""Monitoring: how served models behave, from live counts to alerts.

Training fixes reference bins (`build_reference`); servers and batch jobs count what they
score into the same bins per time window (`LiveCounter`, `LiveStats`) and merge the sums
into the store; outcomes arrive later and join their predictions (`ingest_outcomes`,
`match_outcomes`); `build_report` reads the windows into a `MonitoringReport` (drift,
realized or estimated performance, traffic, errors); `check_alerts` turns a report into
alerts; a `Watcher` does that on a timer.

Example::

    report = monitor_model(store, artifacts, "churn", settings=Settings())
    report.live[0].recall, [d.feature for d in report.drift if d.flagged]

Each name loads its module on first use: `mlprod monitor` reads a report without the
counting side (pandas, the live counters) that servers and batch jobs need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprod.monitoring._alerts import AlertRecord, close_alerts, list_alerts, raise_alert
    from mlprod.monitoring._counter import LiveCounter
    from mlprod.monitoring._document import (
        DriftRow,
        ErrorWindow,
        MonitoringReport,
        Performance,
        TrafficPoint,
        VersionSummary,
    )
    from mlprod.monitoring._labelled import labelled_predictions
    from mlprod.monitoring._live import (
        LiveStats,
        activity_marker,
        merge_live_stats,
        window_start,
    )
    from mlprod.monitoring._outcomes import ingest_outcomes, match_outcomes, outcome_counts
    from mlprod.monitoring._reference import Binner, build_reference
    from mlprod.monitoring._report import build_report
    from mlprod.monitoring._rules import check_alerts, check_webhook, live_gates, post_webhook
    from mlprod.monitoring._watch import Watcher, agreed_thresholds, monitor_model

_LAZY = {
    "AlertRecord": "mlprod.monitoring._alerts",
    "Binner": "mlprod.monitoring._reference",
    "DriftRow": "mlprod.monitoring._document",
    "ErrorWindow": "mlprod.monitoring._document",
    "LiveCounter": "mlprod.monitoring._counter",
    "LiveStats": "mlprod.monitoring._live",
    "MonitoringReport": "mlprod.monitoring._document",
    "Performance": "mlprod.monitoring._document",
    "TrafficPoint": "mlprod.monitoring._document",
    "VersionSummary": "mlprod.monitoring._document",
    "Watcher": "mlprod.monitoring._watch",
    "activity_marker": "mlprod.monitoring._live",
    "agreed_thresholds": "mlprod.monitoring._watch",
    "build_reference": "mlprod.monitoring._reference",
    "build_report": "mlprod.monitoring._report",
    "check_alerts": "mlprod.monitoring._rules",
    "check_webhook": "mlprod.monitoring._rules",
    "close_alerts": "mlprod.monitoring._alerts",
    "ingest_outcomes": "mlprod.monitoring._outcomes",
    "labelled_predictions": "mlprod.monitoring._labelled",
    "list_alerts": "mlprod.monitoring._alerts",
    "live_gates": "mlprod.monitoring._rules",
    "match_outcomes": "mlprod.monitoring._outcomes",
    "merge_live_stats": "mlprod.monitoring._live",
    "monitor_model": "mlprod.monitoring._watch",
    "outcome_counts": "mlprod.monitoring._outcomes",
    "post_webhook": "mlprod.monitoring._rules",
    "raise_alert": "mlprod.monitoring._alerts",
    "window_start": "mlprod.monitoring._live",
}

__all__ = [
    "AlertRecord",
    "Binner",
    "DriftRow",
    "ErrorWindow",
    "LiveCounter",
    "LiveStats",
    "MonitoringReport",
    "Performance",
    "TrafficPoint",
    "VersionSummary",
    "Watcher",
    "activity_marker",
    "agreed_thresholds",
    "build_reference",
    "build_report",
    "check_alerts",
    "check_webhook",
    "close_alerts",
    "ingest_outcomes",
    "labelled_predictions",
    "list_alerts",
    "live_gates",
    "match_outcomes",
    "merge_live_stats",
    "monitor_model",
    "outcome_counts",
    "post_webhook",
    "raise_alert",
    "window_start",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlprod.monitoring' has no attribute {name!r}")

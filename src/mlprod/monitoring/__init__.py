"""Monitoring: live performance, drift and errors of served models, and their alerts."""

from mlprod.monitoring._alerts import check_alerts, check_webhook, post_webhook
from mlprod.monitoring._report import build_report
from mlprod.monitoring._watch import Watcher, agreed_thresholds, monitor_model

__all__ = [
    "Watcher",
    "agreed_thresholds",
    "build_report",
    "check_alerts",
    "check_webhook",
    "monitor_model",
    "post_webhook",
]

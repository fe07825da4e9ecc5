"""Alert rules over a monitoring report, and where alerts go: the store, the log, a webhook.

Three rules, each judged on the newest window with enough data:

* drift: a feature flagged (an effect size over its threshold) in a served version;
* performance: a realized metric whose 95% upper bound is below its gate (the model is
  surely worse than what was agreed), for precision, recall, f1 and roc_auc gates; for
  a multiclass version, accuracy, macro_f1 and per class precision[CLASS] and
  recall[CLASS] gates (a gate naming a class the version lacks is a `SpecError` that
  lists its classes);
* errors: the share of failed requests above ``monitor.error_rate``.

An alert opens once per incident and closes when its rule stops firing; only opening and
closing are logged and posted, so a long incident is two messages, not one a minute.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from mlprod.errors import SpecError
from mlprod.monitoring._alerts import AlertKind, AlertRecord, close_alerts, raise_alert
from mlprod.monitoring._classes import PER_CLASS, PER_CLASS_KEY
from mlprod.monitoring._document import DriftRow, ErrorWindow, MonitoringReport, Performance
from mlprod.spec import Gate, MonitorSpec
from mlprod.store import Store

log = logging.getLogger("mlprod.monitoring")

LIVE_GATES = ("precision", "recall", "f1", "roc_auc")
MULTICLASS_LIVE_GATES = ("accuracy", "macro_f1")  # and precision[CLASS], recall[CLASS]
WEBHOOK_TIMEOUT = 5.0


def check_alerts(
    store: Store,
    report: MonitoringReport,
    *,
    settings: MonitorSpec,
    gates: Mapping[str, Gate],
    webhook: str | None = None,
    allow_private: bool = False,
) -> tuple[list[AlertRecord], list[AlertRecord]]:
    """Open, refresh and close the alerts of `report`'s model: (opened now, closed now)."""
    model = report.model
    firing: dict[AlertKind, dict[str, Finding]] = {
        "drift": _drift_findings(report, settings),
        "performance": _performance_findings(report, gates),
        "errors": _error_findings(report, settings),
    }
    opened, closed = [], []
    for kind, findings in firing.items():
        for subject, (version, message, details) in findings.items():
            alert, new = raise_alert(
                store, model, kind, subject, version=version, message=message, details=details
            )
            if new:
                opened.append(alert)
        closed += close_alerts(store, model, kind, still_failing=set(findings))
    for alert, state in [*((a, "open") for a in opened), *((a, "resolved") for a in closed)]:
        log.warning("alert %s: %s %s: %s", state, alert.model, alert.subject, alert.message)
        if webhook:
            payload = {"state": state, **alert.model_dump(mode="json")}
            post_webhook(webhook, payload, allow_private=allow_private)
    return opened, closed


Finding = tuple[int | None, str, dict[str, Any]]
Row = TypeVar("Row", DriftRow, ErrorWindow)


def _newest(rows: Sequence[Row]) -> list[Row]:
    """The rows of the newest window present."""
    if not rows:
        return []
    newest = max(row.window_start for row in rows)
    return [row for row in rows if row.window_start == newest]


def _drift_findings(report: MonitoringReport, settings: MonitorSpec) -> dict[str, Finding]:
    judged = [row for row in report.drift if row.count >= settings.drift.min_count]
    findings: dict[str, Finding] = {}
    for row in _newest(judged):
        if row.flagged:
            message = f"{row.feature} drifted in v{row.version}: " + "; ".join(row.reasons)
            findings[row.feature] = (row.version, message, row.document())
    return findings


def _performance_findings(
    report: MonitoringReport, gates: Mapping[str, Gate]
) -> dict[str, Finding]:
    for row in report.live:
        check_class_gates(gates, row)
    realized = [row for row in report.performance if not row.estimated]
    findings: dict[str, Finding] = {}
    for version in {row.version for row in realized}:
        latest = max(
            (r for r in realized if r.version == version), key=lambda r: r.window_start or ""
        )
        for metric in live_gates(gates, latest.classes):
            gate = gates[metric]
            high = latest.figure(metric)[2]
            if gate.op not in (">=", ">") or high is None or high >= gate.value:
                continue
            message = (
                f"live {metric} of v{version} is at most {high:.3f} (95% upper bound, "
                f"{latest.n_labelled} labelled), under its gate {gate.value:g}"
            )
            findings[f"{metric}@{version}"] = (version, message, latest.document())
    return findings


def live_gates(gates: Iterable[str], classes: Sequence[str] | None = None) -> list[str]:
    """The gates live figures can judge, in the spec's order (`classes`: multiclass).

    Binary: precision, recall, f1, roc_auc. Multiclass: accuracy, macro_f1 and each
    class's precision and recall (roc_auc, log_loss and weighted_f1 need scores per
    class, which live windows do not keep).

    >>> live_gates(["roc_auc", "recall[gold]", "log_loss"], ["bronze", "gold"])
    ['recall[gold]']
    """
    if not classes:
        return [metric for metric in gates if metric in LIVE_GATES]
    return [
        metric for metric in gates if metric in MULTICLASS_LIVE_GATES or PER_CLASS_KEY.match(metric)
    ]


def check_class_gates(gates: Mapping[str, Gate], row: Performance) -> None:
    """SpecError when a per-class gate names a class `row`'s multiclass version lacks.

    Training refuses such a gate for the data it trains on; a served version trained on
    other classes than the spec's gates name is caught here rather than never judged.
    """
    if not row.classes:
        return  # a binary version: its gates were checked against its own metrics
    wanted = {m: PER_CLASS_KEY.match(m) for m in gates}
    named = {m: found.group(2) for m, found in wanted.items() if found and not found.group(3)}
    lacking = sorted(m for m, name in named.items() if name not in row.classes)
    if lacking:
        raise SpecError(
            f"gate(s) {', '.join(lacking)} name a class v{row.version} does not have; its "
            f"classes are {', '.join(row.classes)}. Fix the class names in mlprod.yaml's "
            f"gates ({', '.join(PER_CLASS)}[CLASS])"
        )


def _error_findings(report: MonitoringReport, settings: MonitorSpec) -> dict[str, Finding]:
    windows = [row for row in report.errors if row.count > 0]
    latest = _newest(windows)
    if not latest or latest[0].rate <= settings.error_rate:
        return {}
    row = latest[0]
    message = f"{row.rate:.1%} of requests failed (over {settings.error_rate:.0%}): {row.codes}"
    return {"error_rate": (None, message, row.model_dump(mode="json"))}


def check_webhook(url: str, *, allow_private: bool = False) -> None:
    """Refuse a webhook that is not http(s) or, unless allowed, reaches a private address.

    Alerts are posted by servers inside the network: a webhook must not become a way to
    reach internal services. Every address the host resolves to is checked.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(f"webhook {url!r} must be an http(s) URL with a host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise SpecError(f"webhook host {parts.hostname!r} does not resolve: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise SpecError(
                f"webhook {parts.hostname!r} resolves to {address}, a private or local address; "
                "set MLPROD_WEBHOOK_ALLOW_PRIVATE=true if that is intended"
            )


def post_webhook(url: str, payload: Mapping[str, Any], *, allow_private: bool = False) -> bool:
    """POST `payload` as JSON; never follows redirects. False (and a log line) on failure."""
    import httpx  # only alerts with a webhook need it

    try:
        check_webhook(url, allow_private=allow_private)
        answer = httpx.post(
            url, json=dict(payload), timeout=WEBHOOK_TIMEOUT, follow_redirects=False
        )
    except (SpecError, httpx.HTTPError) as exc:
        log.error("alert webhook %s failed: %s", urlsplit(url).hostname, exc)
        return False
    if not answer.is_success:
        log.error("alert webhook %s answered %s", urlsplit(url).hostname, answer.status_code)
        return False
    return True

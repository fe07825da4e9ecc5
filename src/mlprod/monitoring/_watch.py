"""Putting it together: a model's report with its alerts checked, once or on a timer.

Thresholds come from the spec recorded with the model's served version (its `monitor:`
section and its `gates:`), so what was agreed at training is what production is held to.
`MLPROD_WEBHOOK` beats the spec's webhook.

Example::

    report = monitor_model(store, artifacts, "churn", settings=Settings())
    Watcher(store, artifacts, Settings()).start()    # every MLPROD_MONITOR_INTERVAL s
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import exc as sa_exc

from mlprod._time import parse_duration
from mlprod.errors import MlprodError
from mlprod.monitoring._alerts import list_alerts
from mlprod.monitoring._document import MonitoringReport
from mlprod.monitoring._outcomes import match_outcomes
from mlprod.monitoring._report import build_report
from mlprod.monitoring._rules import check_alerts
from mlprod.registry import VersionRecord, get_run, list_models, list_versions
from mlprod.settings import Settings
from mlprod.spec import AgreedThresholds, Gate, MonitorSpec
from mlprod.store import ArtifactStore, Store

log = logging.getLogger("mlprod.monitoring")


def agreed_thresholds(store: Store, model: str) -> tuple[MonitorSpec, dict[str, Gate]]:
    """The `monitor:` section and gates recorded with the production (else newest) version."""
    versions = list_versions(store, model)
    chosen: VersionRecord | None = next(
        (v for v in reversed(versions) if "production" in v.aliases),
        versions[-1] if versions else None,
    )
    if chosen is None:
        return MonitorSpec(), {}
    spec = get_run(store, chosen.run_id).spec
    try:
        agreed = AgreedThresholds.model_validate(spec)
    except ValidationError as exc:  # a spec written by another mlprod version
        log.warning("using default monitoring thresholds for %s: %s", model, exc)
        return MonitorSpec(), {}
    return agreed.monitor, {str(metric): gate for metric, gate in agreed.gates.items()}


def monitor_model(
    store: Store,
    artifacts: ArtifactStore,
    model: str,
    *,
    settings: Settings,
    window: timedelta | None = None,
    since: datetime | None = None,
    check: bool = True,
) -> MonitoringReport:
    """Match outcomes, build `model`'s report and (if `check`) open or close its alerts."""
    thresholds, gates = agreed_thresholds(store, model)
    window = window or parse_duration(thresholds.window)
    since = since or datetime.now(UTC) - 24 * window
    match_outcomes(store, bucket_seconds=settings.monitor_bucket)
    report = build_report(store, artifacts, model, window=window, since=since, settings=thresholds)
    if check:
        check_alerts(
            store,
            report,
            settings=thresholds,
            gates=gates,
            webhook=settings.webhook or thresholds.webhook,
            allow_private=settings.webhook_allow_private,
        )
        alerts = list_alerts(store, model, open_only=True)
        report = report.model_copy(update={"alerts": alerts})
    return report


class Watcher:
    """Checks every model's alerts every `settings.monitor_interval` seconds, in a thread."""

    def __init__(self, store: Store, artifacts: ArtifactStore, settings: Settings) -> None:
        self.store = store
        self.artifacts = artifacts
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlprod-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def check_all(self) -> None:
        """One pass over every model that has a version."""
        for name in list_models(self.store):
            if not list_versions(self.store, name):
                continue
            try:
                monitor_model(self.store, self.artifacts, name, settings=self.settings)
            except (MlprodError, sa_exc.SQLAlchemyError) as exc:
                log.warning("cannot check alerts of %s: %s", name, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.monitor_interval):
            try:
                self.check_all()
            except (MlprodError, sa_exc.SQLAlchemyError) as exc:
                log.warning("alert checks skipped, the store is unreachable: %s", exc)

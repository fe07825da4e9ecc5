"""The monitoring report as typed data: what `mlprod monitor --json` prints, row by row.

One `MonitoringReport` feeds the CLI, the dashboard and the alert rules, so they cannot
disagree; ``report.document()`` is the JSON document. Rows are validated as they are
built: that costs about 2 µs a row, less than pydantic's unvalidated construction.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlprod.monitoring._alerts import AlertRecord


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionSummary(_Row):
    """A version as the report shows it: aliases, threshold, gates and test-set figures."""

    version: int
    aliases: list[str]
    threshold: float
    gates_passed: bool
    created_at: str
    test: dict[str, float | None]


class TrafficPoint(_Row):
    """Predictions one version answered in one window."""

    version: int
    window_start: str
    count: int


class Performance(_Row):
    """Live figures of one version, in one window or (``window_start`` None) the period.

    Realized from labelled outcomes once a window has ``monitor.min_labels`` of them,
    else estimated from calibrated scores (``estimated`` True). Rates carry Wilson 95%
    intervals, ROC AUC the Hanley-McNeil one.
    """

    version: int
    window_start: str | None = None
    predictions: int
    n_labelled: int
    estimated: bool
    precision: float | None = None
    precision_low: float | None = None
    precision_high: float | None = None
    recall: float | None = None
    recall_low: float | None = None
    recall_high: float | None = None
    f1: float | None = None
    roc_auc: float | None = None
    roc_auc_low: float | None = None
    roc_auc_high: float | None = None
    average_precision: float | None = None
    value: float | None = None  # business value of the labelled rows (spec's value: matrix)
    value_low: float | None = None
    value_high: float | None = None
    value_per_row: float | None = None

    def figure(self, metric: str) -> tuple[float | None, float | None, float | None]:
        """(value, low, high) of `metric`; None where the metric has no interval."""
        return (
            getattr(self, metric, None),
            getattr(self, f"{metric}_low", None),
            getattr(self, f"{metric}_high", None),
        )


class DriftRow(_Row):
    """One feature (or the score) of one version in one window, against its reference."""

    version: int
    feature: str
    window_start: str
    count: int
    psi: float
    js: float
    p_value: float
    test: str
    null_rate: float
    reference_null_rate: float
    unseen_rate: float
    flagged: bool
    reasons: list[str] = Field(default_factory=list)


class ErrorWindow(_Row):
    """Failed requests in one window, by error code, and their share of all requests."""

    window_start: str
    count: int
    codes: dict[str, int]
    rate: float


class MonitoringReport(_Row):
    """Traffic, live performance, drift, errors, alerts and outcomes of one model.

    Example::

        report = build_report(store, artifacts, "churn", window=timedelta(hours=1), since=t0)
        report.live[0].recall, [d.feature for d in report.drift if d.flagged]
    """

    model: str
    window: str
    since: str
    until: str
    versions: list[VersionSummary]
    traffic: list[TrafficPoint]
    performance: list[Performance]
    live: list[Performance]
    drift: list[DriftRow]
    errors: list[ErrorWindow]
    alerts: list[AlertRecord]
    outcomes: dict[str, int]

    def document(self) -> dict[str, Any]:
        """The report as plain JSON data (what ``mlprod monitor --json`` prints)."""
        return self.model_dump(mode="json")

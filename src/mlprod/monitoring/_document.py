"""The monitoring report as typed data: what `mlprod monitor --json` prints, row by row.

One `MonitoringReport` feeds the CLI, the dashboard and the alert rules, so they cannot
disagree; ``report.document()`` is the JSON document. Rows are validated as they are
built: that costs about 2 µs a row, less than pydantic's unvalidated construction.

A multiclass version's rows carry more: its classes, accuracy, macro F1 and, per class,
keys named as gates name them (``precision[gold]``, ``recall[gold]_low``, ...); its class
shares ride on the drift rows of the predicted class. A document without a multiclass
version leaves those keys out, so binary documents read as they always have.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlprod.monitoring._alerts import AlertRecord
from mlprod.monitoring._classes import PER_CLASS_KEY

# Keys only a multiclass version's rows fill; left out of documents that have none.
MULTICLASS_FIELDS = (
    "classes",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "macro_f1",
    "macro_f1_low",
    "macro_f1_high",
)
SHARE_FIELDS = ("shares", "reference_shares")


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
    classes: list[str] | None = None  # a multiclass version's, in probability order


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

    A multiclass version fills ``classes``, ``accuracy`` and ``macro_f1`` instead of the
    binary figures, and per class ``precision[CLASS]`` and ``recall[CLASS]`` (each with
    ``_low`` and ``_high``): extra keys, checked against its classes, read with `figure`.
    Estimated rows have accuracy only.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

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
    classes: list[str] | None = None
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    macro_f1: float | None = None
    macro_f1_low: float | None = None
    macro_f1_high: float | None = None

    @model_validator(mode="after")
    def _per_class_keys(self) -> Performance:
        """Extra keys are per-class figures of the row's own classes, and nothing else."""
        names = set(self.classes or ())
        for key, value in (self.model_extra or {}).items():
            match = PER_CLASS_KEY.match(key)
            if match is None or match.group(2) not in names:
                raise ValueError(
                    f"unexpected figure {key!r}: extra keys are precision[CLASS] and "
                    f"recall[CLASS] (with _low, _high) of the classes {sorted(names)}"
                )
            if value is not None and not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number or null, got {value!r}")
        return self

    def figure(self, metric: str) -> tuple[float | None, float | None, float | None]:
        """(value, low, high) of `metric` (``recall[gold]`` too); None where it has none."""
        return (
            getattr(self, metric, None),
            getattr(self, f"{metric}_low", None),
            getattr(self, f"{metric}_high", None),
        )

    def document(self) -> dict[str, Any]:
        """The row as JSON data; a binary row without the multiclass keys."""
        return self.model_dump(
            mode="json", exclude=None if self.classes else set(MULTICLASS_FIELDS)
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
    # the predicted class's row of a multiclass version: each class's share of the answers
    shares: dict[str, float] | None = None
    reference_shares: dict[str, float] | None = None  # on the test rows, at training

    def document(self) -> dict[str, Any]:
        """The row as JSON data; without the share keys unless it carries shares."""
        exclude = None if self.shares is not None else set(SHARE_FIELDS)
        return self.model_dump(mode="json", exclude=exclude)


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

    def class_shares(self, version: int) -> dict[str, tuple[float, float | None]]:
        """Class -> (its share of `version`'s answers over the period, its test-row share).

        Each window's shares weigh by its answers; empty for a binary version or no traffic.
        """
        rows = [r for r in self.drift if r.version == version and r.shares is not None]
        answers = sum(r.count for r in rows)
        if not answers:
            return {}
        reference = rows[-1].reference_shares or {}
        return {
            name: (
                sum(r.count * (r.shares or {}).get(name, 0.0) for r in rows) / answers,
                reference.get(name),
            )
            for name in rows[-1].shares or {}
        }

    def document(self) -> dict[str, Any]:
        """The report as plain JSON data (what ``mlprod monitor --json`` prints).

        Without a multiclass version, the multiclass keys are left out of every row.
        """
        if any(version.classes for version in self.versions):
            return self.model_dump(mode="json")
        return self.model_dump(mode="json", exclude=_binary_exclude())


def _binary_exclude() -> dict[str, Any]:
    def every(fields: Iterable[str]) -> dict[str, Any]:
        return {"__all__": set(fields)}

    return {
        "versions": every(["classes"]),
        "performance": every(MULTICLASS_FIELDS),
        "live": every(MULTICLASS_FIELDS),
        "drift": every(SHARE_FIELDS),
    }

"""The monitoring report of one model: traffic, live performance, drift, errors, alerts.

Everything is read from the store's window statistics, so the cost depends on the number
of windows, not of predictions. `mlprod monitor --json` prints exactly this document and
the dashboard renders the same one, so the two can never disagree.

Example::

    report = build_report(store, artifacts, "churn", window=timedelta(hours=1),
                          since=datetime.now(UTC) - timedelta(days=7))
    report.performance[-1].recall, report.drift[0].psi

A multiclass version's rows carry accuracy, macro F1 and each class's precision and
recall, read from the confusion matrices outcome matching adds; its class shares are the
drift rows of the predicted class, with each class's share beside the reference's.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from mlprod._time import duration_text
from mlprod.bundle import read_reference
from mlprod.monitoring._alerts import list_alerts
from mlprod.monitoring._classes import class_key, class_names, is_multiclass
from mlprod.monitoring._document import (
    DriftRow,
    ErrorWindow,
    MonitoringReport,
    Performance,
    TrafficPoint,
    VersionSummary,
)
from mlprod.monitoring._drift import drift_table
from mlprod.monitoring._live import read_feature_counts, read_request_errors, read_window_stats
from mlprod.monitoring._outcomes import outcome_counts
from mlprod.monitoring._performance import (
    class_performance,
    estimated_accuracy,
    estimated_performance,
    realized_performance,
)
from mlprod.monitoring._reference import (
    CONFUSION,
    PREDICTED,
    SCORE,
    Binner,
    add_score_histograms,
    bin_labels,
)
from mlprod.monitoring._value import live_value, version_matrices
from mlprod.registry import VersionRecord, list_versions, resolve
from mlprod.spec import MonitorSpec
from mlprod.store import ArtifactStore, Store

SUMMED = (
    "predictions",
    "predicted_positive",
    "est_tp",
    "est_positive",
    "labelled",
    "tp",
    "fp",
    "fn",
    "tn",
)
HISTOGRAMS = ("score_hist", "pos_hist", "neg_hist")
TEST_FIGURES = ("precision", "recall", "f1", "roc_auc", "average_precision")
MULTICLASS_TEST_FIGURES = ("accuracy", "macro_f1")  # and each class's precision and recall
# How the drift table names the pseudo-features stored beside real ones.
PSEUDO_FEATURES = {SCORE: "score", PREDICTED: "predicted class"}
WHOLE_PERIOD = datetime.fromtimestamp(0, UTC)  # the one "window" of the period's totals


@functools.lru_cache(maxsize=65_536)  # a year of hourly rows has only 8,760 distinct starts
def report_window(at: datetime, window: timedelta) -> datetime:
    """The start of the report window `at` falls in (aligned to the Unix epoch)."""
    seconds = max(int(window.total_seconds()), 1)
    return datetime.fromtimestamp(int(at.timestamp()) // seconds * seconds, UTC)


class References:
    """Each version's reference bins and calibration, read from its bundle once."""

    def __init__(self, artifacts: ArtifactStore, versions: Iterable[VersionRecord]) -> None:
        self.artifacts = artifacts
        self.records = {record.version: record for record in versions}
        self._loaded: dict[int, dict[str, Any] | None] = {}

    def get(self, version: int) -> dict[str, Any] | None:
        if version not in self._loaded:
            record = self.records.get(version)
            folder = self.artifacts.path(record.bundle_id) if record else None
            self._loaded[version] = _reference(folder) if folder and folder.exists() else None
        return self._loaded[version]

    def binner(self, version: int) -> Binner | None:
        reference = self.get(version)
        return Binner(reference) if reference is not None else None


@functools.lru_cache(maxsize=256)
def _reference(folder: Path) -> dict[str, Any] | None:
    """Bundles never change once registered: hash-check each reference once per process."""
    return read_reference(folder)


def build_report(
    store: Store,
    artifacts: ArtifactStore,
    model: str,
    *,
    window: timedelta,
    since: datetime,
    until: datetime | None = None,
    settings: MonitorSpec | None = None,
    summary: bool = False,
) -> MonitoringReport:
    """The monitoring report of `model` over [since, until) in windows of `window`.

    `summary` leaves out the per-window performance and computes drift for the newest
    window only: what an overview of many models shows, at a fraction of the cost. The
    figures it keeps are identical to the full report's.
    """
    settings = settings or MonitorSpec()
    since = report_window(since, window)  # whole windows: the CLI and the dashboard agree
    versions = list_versions(store, model)
    resolve(store, model)  # NotFoundError naming the models there are, for a typo
    references = References(artifacts, versions)
    stats = read_window_stats(store, model, since=since, until=until)
    windows = _group(stats, window)
    totals = _group(stats, None)
    newest = max((w for _, w in windows), default=since)
    matrices = version_matrices(store, versions, {v for v, _ in totals})
    names = _multiclass_names(versions)
    confusion = _confusion(store, model, since, until, window, names)
    counts = read_feature_counts(
        store,
        model,
        since=newest if summary else since,
        until=until,
        columns=("version", "feature", "window_start", "counts"),
    )
    return MonitoringReport(
        model=model,
        window=duration_text(window),
        since=since.isoformat(),
        until=(until or datetime.now(UTC)).isoformat(),
        versions=[_version_summary(record) for record in versions],
        traffic=[
            TrafficPoint(version=v, window_start=w.isoformat(), count=int(row["predictions"]))
            for (v, w), row in sorted(windows.items())
        ],
        performance=[]
        if summary
        else [
            _performance(v, w, row, references, settings, matrices.get(v))
            if v not in names
            else _class_row(v, w, row, references, settings, names[v], confusion.get((v, w)))
            for (v, w), row in sorted(windows.items())
        ],
        live=[
            _performance(v, None, row, references, settings, matrices.get(v))
            if v not in names
            else _class_row(v, None, row, references, settings, names[v], confusion.get((v, w)))
            for (v, w), row in sorted(totals.items())
        ],
        drift=_drift(counts, window, references, settings),
        errors=_errors(
            read_request_errors(store, model, since=since, until=until), windows, window
        ),
        alerts=list_alerts(store, model, open_only=True),
        outcomes=outcome_counts(store, model),
    )


def _group(
    rows: Iterable[Mapping[str, Any]], window: timedelta | None
) -> dict[tuple[int, datetime], dict[str, Any]]:
    """Sum window_stats rows per (version, report window); None sums the whole period."""
    grouped: dict[tuple[int, datetime], dict[str, Any]] = {}
    for row in rows:
        start = report_window(row["window_start"], window) if window else WHOLE_PERIOD
        current = grouped.get((row["version"], start))
        if current is None:
            grouped[(row["version"], start)] = {
                **{k: row[k] for k in SUMMED},
                **{k: np.asarray(row[k], dtype=float) for k in HISTOGRAMS},
            }
            continue
        for key in SUMMED:
            current[key] += row[key]
        for key in HISTOGRAMS:
            current[key] = add_score_histograms(current[key], row[key])
    return grouped


def _version_summary(record: VersionRecord) -> VersionSummary:
    metrics = record.metrics
    figures = list(TEST_FIGURES)
    names = _multiclass_names([record]).get(record.version)
    if names:
        figures += MULTICLASS_TEST_FIGURES
        figures += [class_key(m, name) for name in names for m in ("precision", "recall")]
    test = {name: (metrics.get(name) or {}).get("value") for name in figures}
    return VersionSummary(
        version=record.version,
        aliases=record.aliases,
        threshold=record.threshold,
        gates_passed=record.gates_passed,
        created_at=record.created_at.isoformat(),
        test=test,
        classes=names,
    )


def _multiclass_names(versions: Iterable[VersionRecord]) -> dict[int, list[str]]:
    """Version -> its class names, for the multiclass versions among `versions`."""
    found = {}
    for record in versions:
        classes = record.signature.get("classes") or []
        if is_multiclass(classes):
            found[record.version] = class_names(classes)
    return found


def _confusion(
    store: Store,
    model: str,
    since: datetime,
    until: datetime | None,
    window: timedelta,
    names: Mapping[int, list[str]],
) -> dict[tuple[int, datetime], np.ndarray]:
    """Confusion matrices per (version, report window) and per (version, `WHOLE_PERIOD`)."""
    if not names:
        return {}
    rows = read_feature_counts(
        store,
        model,
        since=since,
        until=until,
        columns=("version", "window_start", "counts"),
        feature=CONFUSION,
    )
    found: dict[tuple[int, datetime], np.ndarray] = {}
    for row in rows:
        k = len(names.get(row["version"], ()))
        counts = np.asarray(row["counts"], dtype=float)
        if not k or counts.size > k * k:
            continue  # not a multiclass version now, or another version's classes
        counts = np.pad(counts, (0, k * k - counts.size))
        for start in (report_window(row["window_start"], window), WHOLE_PERIOD):
            key = (row["version"], start)
            found[key] = found[key] + counts if key in found else counts
    return found


def _class_row(
    version: int,
    start: datetime | None,
    row: Mapping[str, Any],
    references: References,
    settings: MonitorSpec,
    names: list[str],
    confusion: np.ndarray | None,
) -> Performance:
    """A multiclass version's figures: realized from labels as `_performance`, else estimated.

    Right answers are the window's ``tp``; the estimate is the calibrated chance that each
    answer is right, summed (``est_tp``, every answer being "positive" at threshold 0).
    """
    labelled = int(row["labelled"])
    base: dict[str, Any] = {
        "version": version,
        "predictions": int(row["predictions"]),
        "window_start": None if start is None else start.isoformat(),
        "classes": names,
        "n_labelled": labelled,
    }
    if labelled >= settings.min_labels or references.binner(version) is None:
        matrix = confusion if confusion is not None else np.zeros(len(names) ** 2)
        figures = class_performance(matrix, names, right=int(row["tp"]), labelled=labelled)
        return Performance(**base, **figures, estimated=False)
    figures = estimated_accuracy(est_right=float(row["est_tp"]), predictions=base["predictions"])
    return Performance(**base, **figures, estimated=True)


def _performance(
    version: int,
    start: datetime | None,
    row: Mapping[str, Any],
    references: References,
    settings: MonitorSpec,
    matrix: Mapping[str, float] | None = None,
) -> Performance:
    """Realized figures once the window has enough labels, estimated ones before.

    With a value `matrix`, realized figures carry the labelled rows' business value.
    """
    labelled = int(row["labelled"])
    base: dict[str, Any] = {
        "version": version,
        "predictions": int(row["predictions"]),
        "window_start": None if start is None else start.isoformat(),
    }
    binner = references.binner(version)
    if labelled >= settings.min_labels or binner is None:
        figures = realized_performance(
            tp=int(row["tp"]),
            fp=int(row["fp"]),
            fn=int(row["fn"]),
            tn=int(row["tn"]),
            pos_hist=row["pos_hist"],
            neg_hist=row["neg_hist"],
        )
        value = live_value(row, matrix) if matrix else {}
        return Performance(
            **{**base, **figures, **value, "n_labelled": labelled, "estimated": False}
        )
    figures = estimated_performance(
        predicted_positive=int(row["predicted_positive"]),
        est_tp=float(row["est_tp"]),
        est_positive=float(row["est_positive"]),
        score_hist=row["score_hist"],
        calibrate=binner.calibrated,
    )
    return Performance(**{**base, **figures, "n_labelled": labelled, "estimated": True})


def _drift(
    rows: Iterable[Mapping[str, Any]],
    window: timedelta,
    references: References,
    settings: MonitorSpec,
) -> list[DriftRow]:
    """Per version, feature and window: PSI, JS, p-value, missing and unseen rates, flag."""
    grouped: dict[tuple[int, str], tuple[list[datetime], list[Any]]] = {}
    for row in rows:
        starts, counts = grouped.setdefault((row["version"], row["feature"]), ([], []))
        starts.append(report_window(row["window_start"], window))
        counts.append(row["counts"])
    found = []
    for (version, feature), (row_starts, row_counts) in sorted(grouped.items()):
        reference = references.get(version)
        if reference is None or feature == CONFUSION:  # outcomes' counts, not a drift
            continue
        ref = _reference_bins(reference, feature)
        if ref is None or any(len(c) != len(ref["counts"]) for c in row_counts):
            continue
        starts, live = _sum_by_window(row_starts, row_counts)
        reference_counts = np.asarray(ref["counts"], dtype=float)
        table = drift_table(live, reference_counts, categorical="categories" in ref)
        for start, stats, counts in zip(starts, table, live, strict=True):
            reasons = _drift_reasons(stats, settings)
            shares = {}
            if feature == PREDICTED:
                shares = class_shares(bin_labels(ref), counts, reference_counts)
            found.append(
                DriftRow(
                    version=version,
                    feature=PSEUDO_FEATURES.get(feature, feature),
                    window_start=start.isoformat(),
                    count=stats.count,
                    psi=stats.psi,
                    js=stats.js,
                    p_value=stats.p_value,
                    test=stats.test,
                    null_rate=stats.null_rate,
                    reference_null_rate=stats.reference_null_rate,
                    unseen_rate=stats.unseen_rate,
                    flagged=bool(reasons),
                    reasons=reasons,
                    **shares,
                )
            )
    return sorted(found, key=lambda r: (r.version, r.window_start, r.feature))


def class_shares(
    bins: list[str], live: np.ndarray, reference: np.ndarray
) -> dict[str, dict[str, float]]:
    """Each class's share of a window's answers and of the test rows' predictions.

    Bins are the reference's: the classes predicted on the test rows, then ``other``,
    ``unseen`` (a class never predicted on the test rows) and ``missing`` (no answer),
    the last three shown only where they hold something.
    """
    live_total, reference_total = max(float(live.sum()), 1.0), max(float(reference.sum()), 1.0)
    classes = len(bins) - 3
    kept = [i for i in range(len(bins)) if i < classes or live[i] or reference[i]]
    return {
        "shares": {bins[i]: float(live[i]) / live_total for i in kept},
        "reference_shares": {bins[i]: float(reference[i]) / reference_total for i in kept},
    }


def _reference_bins(reference: Mapping[str, Any], feature: str) -> Mapping[str, Any] | None:
    """The reference bins live counts under `feature` are compared with (None: none)."""
    found: Mapping[str, Any] | None
    if feature == SCORE:
        found = reference["score"]
    elif feature == PREDICTED:
        found = reference.get("predicted")  # a multiclass version's class shares
    else:
        found = reference["features"].get(feature)
    return found


def _sum_by_window(starts: list[datetime], counts: list[Any]) -> tuple[list[datetime], np.ndarray]:
    """Rows' count vectors summed per window, in one numpy pass (windows in time order)."""
    windows = sorted(set(starts))
    index = {start: i for i, start in enumerate(windows)}
    sums = np.zeros((len(windows), len(counts[0])))
    np.add.at(sums, np.fromiter((index[s] for s in starts), dtype=np.int64), np.asarray(counts))
    return windows, sums


def _drift_reasons(stats: Any, settings: MonitorSpec) -> list[str]:
    """Why a window is flagged: effect sizes over their thresholds, with enough rows."""
    limits = settings.drift
    if stats.count < limits.min_count:
        return []
    reasons = []
    if stats.psi > limits.psi:
        reasons.append(f"psi {stats.psi:.3f} > {limits.psi:g}")
    if stats.null_rate - stats.reference_null_rate > limits.null_rate:
        reasons.append(f"missing {stats.null_rate:.1%} (was {stats.reference_null_rate:.1%})")
    if stats.unseen_rate > limits.unseen_rate:
        reasons.append(f"unseen categories {stats.unseen_rate:.1%}")
    return reasons


def _errors(
    rows: Iterable[Mapping[str, Any]],
    windows: Mapping[tuple[int, datetime], Mapping[str, Any]],
    window: timedelta,
) -> list[ErrorWindow]:
    """Failed requests per window, and their share of all requests."""
    failed: dict[datetime, dict[str, int]] = {}
    for row in rows:
        codes = failed.setdefault(report_window(row["window_start"], window), {})
        codes[row["code"]] = codes.get(row["code"], 0) + int(row["count"])
    traffic: dict[datetime, int] = {}
    for (_, start), row in windows.items():
        traffic[start] = traffic.get(start, 0) + int(row["predictions"])
    found = []
    for start, codes in sorted(failed.items()):
        count = sum(codes.values())
        total = count + traffic.get(start, 0)
        found.append(
            ErrorWindow(
                window_start=start.isoformat(),
                count=count,
                codes=codes,
                rate=count / total if total else 0.0,
            )
        )
    return found

"""What the dashboard pages show, as plain data built from the monitoring report.

Every live number on a page comes from `build_report`, the function behind
`mlprod monitor --json`, over whole windows: the page and the CLI cannot disagree.
Aggregates come from the store's window statistics, so fifty models with a year of
history cost a few small queries each, not a scan of the prediction log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlprod.dashboard._loop import loop_detail
from mlprod.dashboard._training import training_detail
from mlprod.errors import NotFoundError
from mlprod.evaluation import MULTICLASS_METRIC_NAMES
from mlprod.monitoring import (
    AlertRecord,
    MonitoringReport,
    Performance,
    VersionSummary,
    agreed_thresholds,
    build_report,
    list_alerts,
    live_gates,
)
from mlprod.pipelines import comparison_charts, config_diff, version_test_scores
from mlprod.registry import (
    RunRecord,
    VersionRecord,
    audit_log,
    get_deployment,
    get_run,
    get_version,
    list_models,
    list_versions,
    search_runs,
)
from mlprod.spec import Gate, MonitorSpec
from mlprod.store import ArtifactStore, Store


@dataclass(frozen=True)
class Period:
    """A span of history and the window size that shows it in a few hundred points."""

    name: str
    span: timedelta
    window: timedelta


PERIODS = {
    p.name: p
    for p in (
        Period("24h", timedelta(hours=24), timedelta(hours=1)),
        Period("7d", timedelta(days=7), timedelta(hours=1)),
        Period("30d", timedelta(days=30), timedelta(hours=6)),
        Period("1y", timedelta(days=365), timedelta(days=1)),
    )
}
CANDIDATES = 3  # development versions shown per model


def period(name: str) -> Period:
    """A named period; NotFoundError lists the ones there are."""
    found = PERIODS.get(name)
    if found is None:
        raise NotFoundError(f"no period {name!r}; choose one of {', '.join(PERIODS)}")
    return found


def model_report(
    store: Store,
    artifacts: ArtifactStore,
    name: str,
    span: Period,
    thresholds: MonitorSpec | None = None,
    *,
    summary: bool = False,
) -> MonitoringReport:
    """`mlprod monitor NAME --window W --since S --json`, without touching alerts."""
    thresholds = thresholds or agreed_thresholds(store, name)[0]
    since = datetime.now(UTC) - span.span
    return build_report(
        store,
        artifacts,
        name,
        window=span.window,
        since=since,
        settings=thresholds,
        summary=summary,
    )


def overview(store: Store, artifacts: ArtifactStore, span: Period) -> dict[str, Any]:
    """One row per model: production, candidates, live vs test, traffic, drift, alerts."""
    alerts: dict[str, list[AlertRecord]] = {}
    for alert in list_alerts(store, open_only=True, limit=10_000):
        alerts.setdefault(alert.model, []).append(alert)
    rows = []
    for name in list_models(store):
        versions = list_versions(store, name)
        if versions:
            rows.append(_model_row(store, artifacts, name, versions, span, alerts.get(name, [])))
    return {"period": span.name, "generated_at": datetime.now(UTC).isoformat(), "models": rows}


def _model_row(
    store: Store,
    artifacts: ArtifactStore,
    name: str,
    versions: Sequence[VersionRecord],
    span: Period,
    alerts: Sequence[AlertRecord],
) -> dict[str, Any]:
    thresholds, gates = agreed_thresholds(store, name)
    report = model_report(store, artifacts, name, span, thresholds, summary=True)
    live = {row.version: row for row in report.live}
    summaries = {v.version: v for v in report.versions}
    production = next((v for v in reversed(versions) if "production" in v.aliases), None)
    newer = [v for v in reversed(versions) if production is None or v.version > production.version]
    traffic: dict[int, int] = {}
    for window in report.traffic:
        traffic[window.version] = traffic.get(window.version, 0) + window.count
    drifted = _drifted(report, production.version if production else None)
    row: dict[str, Any] = {
        "name": name,
        "production": _version_row(production, live, summaries) if production else None,
        "candidates": [_version_row(v, live, summaries) for v in newer[:CANDIDATES]],
        "traffic": [{"version": v, "count": c} for v, c in sorted(traffic.items())],
        "drifted": drifted,
        "alerts": [{"kind": a.kind, "subject": a.subject, "message": a.message} for a in alerts],
        "outcomes": report.outcomes,
    }
    row["health"], row["reasons"] = health(row, gates)
    return row


def _version_row(
    record: VersionRecord,
    live: Mapping[int, Performance],
    summaries: Mapping[int, VersionSummary],
) -> dict[str, Any]:
    return {
        "version": record.version,
        "aliases": record.aliases,
        "gates_passed": record.gates_passed,
        "created_at": record.created_at.isoformat(),
        "test": summaries[record.version].test,
        "live": live[record.version].document() if record.version in live else None,
    }


def _drifted(report: MonitoringReport, version: int | None) -> list[str]:
    """Features flagged in the newest window of `version` (the production version)."""
    rows = [r for r in report.drift if r.version == version]
    if not rows:
        return []
    newest = max(r.window_start for r in rows)
    return sorted(r.feature for r in rows if r.window_start == newest and r.flagged)


def health(row: Mapping[str, Any], gates: Mapping[str, Gate]) -> tuple[str, list[str]]:
    """healthy, warning or failing, by the model's own gates and monitoring thresholds.

    Failing: the production version failed its gates, a realized live metric is surely
    under its gate (95% upper bound), or a performance or error alert is open. Warning:
    no production version, drift in the newest window, an open drift alert, or an
    estimated metric under its gate. The metrics judged are the alert rules' (`live_gates`:
    a multiclass version's accuracy, macro F1 and per-class figures).
    """
    failing, warning = [], []
    production = row["production"]
    if production is None:
        warning.append("no production version")
    else:
        if not production["gates_passed"]:
            failing.append(f"v{production['version']} failed its gates (promoted by force)")
        live = production["live"] or {}
        for metric in live_gates(gates, live.get("classes")):
            gate, value, high = gates[metric], live.get(metric), live.get(f"{metric}_high")
            if gate.op not in (">=", ">") or value is None:
                continue
            if not live["estimated"] and high is not None and high < gate.value:
                failing.append(f"live {metric} {value:.3f} is under its gate {gate.value:g}")
            elif live["estimated"] and value < gate.value:
                warning.append(f"estimated {metric} {value:.3f} is under its gate {gate.value:g}")
    kinds = {alert["kind"] for alert in row["alerts"]}
    failing += [f"open {kind} alert" for kind in sorted(kinds - {"drift"})]
    if row["drifted"] or "drift" in kinds:
        warning.append("drift: " + (", ".join(row["drifted"]) or "open alert"))
    state = "failing" if failing else "warning" if warning else "healthy"
    return state, failing + warning


def model_detail(store: Store, artifacts: ArtifactStore, name: str, span: Period) -> dict[str, Any]:
    """The model page: the windows of its report, routes, versions and audit log."""
    report = model_report(store, artifacts, name, span)
    deployment = get_deployment(store, name)
    production = next((v for v in report.versions if "production" in v.aliases), None)
    return {
        "name": name,
        "period": span.name,
        "report": report,
        "production": production.version if production else None,
        "classes": class_detail(report, production.version if production else None),
        "deployment": deployment.model_dump(mode="json") if deployment else None,
        "audit": [entry.model_dump(mode="json") for entry in audit_log(store, name, limit=50)],
        "loop": loop_detail(store, name),
    }


def class_detail(report: MonitoringReport, production: int | None) -> dict[str, Any] | None:
    """Per class of a multiclass version: live and test precision and recall, answer shares.

    The production version if it is multiclass, else the newest multiclass version with
    traffic; None when there is none. Shares are over the whole period, beside the test
    rows' shares at training (`MonitoringReport.class_shares`).
    """
    live = {row.version: row for row in report.live if row.classes}
    if not live:
        return None
    version = production if production in live else max(live)
    row = live[version]
    test = next(v.test for v in report.versions if v.version == version)
    shares = report.class_shares(version)
    classes = []
    for name in row.classes or []:
        share, reference = shares.get(name, (None, None))
        classes.append(
            {
                "name": name,
                "test_precision": test.get(f"precision[{name}]"),
                "test_recall": test.get(f"recall[{name}]"),
                "share": share,
                "reference_share": reference,
            }
        )
    return {"version": version, "live": row, "classes": classes}


def version_detail(store: Store, name: str, version: int) -> dict[str, Any]:
    """The version page: metrics, gates, the run behind it and its lineage."""
    record = get_version(store, name, version)
    run = get_run(store, record.run_id)
    lineage = [run.model_dump(mode="json", exclude={"spec"})]
    while lineage[-1]["parent_run_id"] and len(lineage) < 20:
        lineage.append(
            get_run(store, lineage[-1]["parent_run_id"]).model_dump(mode="json", exclude={"spec"})
        )
    return {
        "name": name,
        "version": record.model_dump(mode="json"),
        "run": run.model_dump(mode="json"),
        "lineage": lineage,
        "training": training_detail(store, run.id),  # a network's telemetry charts
    }


RUN_FIGURES = ("roc_auc", "average_precision", "precision", "recall", "f1", "log_loss")


def find_runs(store: Store, filters: Mapping[str, str]) -> dict[str, Any]:
    """The runs page: `search_runs` with the page's filters (the CLI's filter language)."""
    chosen = {k: v for k, v in filters.items() if v}
    runs = search_runs(
        store,
        model=chosen.get("model"),
        where=chosen.get("where"),
        since=chosen.get("since"),
        user=chosen.get("user"),
        sort=chosen.get("sort") or None,
        limit=200,
    )
    rows = []
    for run in runs:
        metrics = {name: (run.metrics.get(name) or {}).get("value") for name in RUN_FIGURES}
        rows.append(
            {
                "id": run.id,
                "model": run.model,
                "status": run.status,
                "user": run.user,
                "started_at": run.started_at.isoformat(),
                "version": run.version,
                "winner": run.params.get("winner"),
                "metrics": metrics,
            }
        )
    return {"filters": chosen, "runs": rows, "figures": list(RUN_FIGURES)}


def compare_runs(store: Store, artifacts: ArtifactStore, run_ids: Sequence[str]) -> dict[str, Any]:
    """Two or more runs side by side: metrics, what changed, and their test sets drawn
    together (binary: ROC and PR curves; multiclass: confusion matrices, per-class ROC)."""
    if len(run_ids) < 2:
        raise NotFoundError("pick at least two runs to compare")
    runs = [get_run(store, run_id) for run_id in run_ids]
    scored = {}
    for run in runs:
        found = version_test_scores(run, store, artifacts)
        if found is not None:
            scored[f"{run.model}@{run.version} ({run.id[:8]})"] = found
    first = runs[0]
    figures = _compared_figures(runs)
    return {
        "runs": [
            {
                "id": r.id,
                "model": r.model,
                "version": r.version,
                "user": r.user,
                "started_at": r.started_at.isoformat(),
                "winner": r.params.get("winner"),
                "metrics": {n: r.metrics.get(n) for n in figures},
            }
            for r in runs
        ],
        "differences": {r.id: config_diff(first, r) for r in runs[1:]},
        "charts": {
            f"chart-{name}": _plain_figure(figure)
            for name, figure in comparison_charts(scored).items()
        },
    }


def _compared_figures(runs: Sequence[RunRecord]) -> list[str]:
    """The binary figures, and for multiclass runs their macro and per-class metrics."""
    names = [] if all("macro_f1" in r.metrics for r in runs) else list(RUN_FIGURES)
    for run in runs:
        if "macro_f1" in run.metrics:
            found = [*MULTICLASS_METRIC_NAMES, *(n for n in run.metrics if "[" in n)]
            names += [n for n in found if n not in names]
    return names


def _plain_figure(figure: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(figure.to_json())
    return data

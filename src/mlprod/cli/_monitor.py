"""``mlprod monitor`` and ``mlprod outcomes ingest``: how served models are doing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mlprod.cli._common import (
    JsonOption,
    StoreOption,
    console,
    open_stores,
    print_json,
    settings_for,
    since_option,
    styled,
)
from mlprod.errors import DataError, SpecError

if TYPE_CHECKING:
    import pandas as pd

    from mlprod.monitoring import MonitoringReport, Performance, VersionSummary

outcomes_app = typer.Typer(
    help="Observed labels, joined to predictions later.", no_args_is_help=True
)
SHOWN_WINDOWS = 12
SHOWN_FEATURES = 10


def monitor(
    name: Annotated[str, typer.Argument(help="Model name.")],
    window: Annotated[
        str | None, typer.Option(help="Window size: 15min, 1h, 1d (default: the spec's).")
    ] = None,
    since: Annotated[str, typer.Option(help="How far back: 24h, 7d or an ISO time.")] = "24h",
    alerts: Annotated[bool, typer.Option(help="Open and close alerts as the report finds.")] = True,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Traffic per version, live vs test performance, drift, errors and open alerts."""
    from mlprod._time import parse_duration
    from mlprod.monitoring import monitor_model

    try:
        size = parse_duration(window) if window else None
    except ValueError as exc:
        raise SpecError(f"--window: {exc}") from None
    settings = settings_for(store)
    meta, artifacts = open_stores(settings)
    with meta:
        report = monitor_model(
            meta,
            artifacts,
            name,
            settings=settings,
            window=size,
            since=since_option(since),
            check=alerts,
        )
    if json:
        print_json(report.document())
        return
    _print(report)


def _rate(row: Performance | None, metric: str) -> str:
    value, low, high = row.figure(metric) if row is not None else (None, None, None)
    if value is None:
        return "-"
    interval = f" ({low:.2f}-{high:.2f})" if low is not None and high is not None else ""
    return f"{value:.3f}{interval}"


def _print(report: MonitoringReport) -> None:
    console.print(
        styled("bold", report.model, f" windows of {report.window} since {report.since[:16]}")
    )
    if any(version.classes for version in report.versions):
        _print_multiclass(report)
    else:
        _print_binary(report)
    _print_traffic(report)
    _print_drift(report)
    _print_alerts(report)


def _print_binary(report: MonitoringReport) -> None:
    _print_versions(report, {"precision": "precision", "recall": "recall", "roc_auc": "roc_auc"},
                    estimated=("precision", "recall"))  # fmt: skip


def _print_multiclass(report: MonitoringReport) -> None:
    """Accuracy and macro F1 per version, then each class's precision, recall and share."""
    _print_versions(report, {"accuracy": "accuracy", "macro_f1": "macro F1"},
                    estimated=("accuracy",))  # fmt: skip
    live = {row.version: row for row in report.live}
    for version in report.versions:
        row = live.get(version.version)
        if row is not None and row.classes:
            _print_classes(report, version, row)


def _print_versions(
    report: MonitoringReport, figures: dict[str, str], *, estimated: tuple[str, ...]
) -> None:
    """One row per version: live `figures` (metric: heading) over the period, then the test's.

    The `estimated` ones are marked so when a window had too few labels to measure them.
    """
    live = {row.version: row for row in report.live}
    headings = [*figures.values(), *(f"test {heading}" for heading in figures.values())]
    table = Table("version", "aliases", "predictions", "labelled", *headings,
                  title="live (whole period) vs test set")  # fmt: skip
    for version in report.versions:
        row = live.get(version.version)
        if row is None and not version.aliases:
            continue
        mark = (" (estimated)", "yellow") if row is not None and row.estimated else ""
        table.add_row(
            str(version.version),
            ", ".join(version.aliases) or "-",
            f"{row.predictions if row else 0:,}",
            f"{row.n_labelled if row else 0:,}",
            *(
                Text.assemble(_rate(row, m), mark) if m in estimated else _rate(row, m)
                for m in figures
            ),
            *(_test(version.test, m) for m in figures),
        )
    console.print(table)


def _test(figures: dict[str, float | None], metric: str) -> str:
    value = figures.get(metric)
    return f"{value:.3f}" if value is not None else "-"


def _print_classes(report: MonitoringReport, version: VersionSummary, row: Performance) -> None:
    shares = report.class_shares(version.version)
    table = Table(
        "class",
        "precision",
        "recall",
        "test precision",
        "test recall",
        "share",
        "test share",
        title=f"v{version.version} per class (live, whole period)",
    )
    for name in row.classes or []:
        share, reference = shares.get(name, (None, None))
        table.add_row(
            name,
            _rate(row, f"precision[{name}]"),
            _rate(row, f"recall[{name}]"),
            *(_test(version.test, f"{m}[{name}]") for m in ("precision", "recall")),
            f"{share:.1%}" if share is not None else "-",
            f"{reference:.1%}" if reference is not None else "-",
        )
    console.print(table)
    if row.estimated:
        console.print("  too few labels: per-class figures wait for outcomes", style="yellow")


def _print_traffic(report: MonitoringReport) -> None:
    versions = sorted({row.version for row in report.traffic})
    if not versions:
        console.print("no traffic in this period")
        return
    counts = {(r.window_start, r.version): r.count for r in report.traffic}
    errors = {r.window_start: r.count for r in report.errors}
    table = Table("window", *(f"v{v}" for v in versions), "errors", title="traffic")
    for start in sorted({r.window_start for r in report.traffic})[-SHOWN_WINDOWS:]:
        cells = [f"{counts.get((start, v), 0):,}" for v in versions]
        table.add_row(start[:16], *cells, str(errors.get(start, 0)))
    console.print(table)


def _print_drift(report: MonitoringReport) -> None:
    if not report.drift:
        console.print("no drift statistics (no traffic, or versions without reference bins)")
        return
    newest = max(row.window_start for row in report.drift)
    rows = sorted((r for r in report.drift if r.window_start == newest), key=lambda r: -r.psi)
    # a multiclass version's class shares are always shown, however small their change
    rows = [*rows[:SHOWN_FEATURES], *(r for r in rows[SHOWN_FEATURES:] if r.shares is not None)]
    table = Table(
        "feature",
        "version",
        "psi",
        "js",
        "p-value",
        "missing",
        "unseen",
        "",
        title=f"drift, window {newest[:16]} (largest first)",
    )
    for r in rows:
        flag = Text("drifted", "red") if r.flagged else Text("ok", "green")
        table.add_row(
            r.feature,
            str(r.version),
            f"{r.psi:.3f}",
            f"{r.js:.3f}",
            f"{r.p_value:.2g}",
            f"{r.null_rate:.1%}",
            f"{r.unseen_rate:.1%}",
            flag,
        )
    console.print(table)


def _print_alerts(report: MonitoringReport) -> None:
    outcomes = report.outcomes
    console.print(
        f"outcomes: {outcomes['matched']:,} matched, {outcomes['pending']:,} waiting "
        f"for their prediction (+{outcomes.get('unassigned', 0):,} sent by id alone), "
        f"{outcomes['invalid']:,} invalid, {outcomes['duplicate']:,} duplicate"
    )
    if not report.alerts:
        console.print(styled("green", "no open alerts"))
    for alert in report.alerts:
        console.print(
            styled(
                "red",
                "alert",
                f"{alert.kind}: {alert.message} (since {alert.opened_at.isoformat()[:16]})",
            )
        )


@outcomes_app.command("ingest")
def ingest(
    source: Annotated[Path | None, typer.Argument(help="CSV or Parquet file of outcomes.")] = None,
    sql: Annotated[str | None, typer.Option(help="A query returning the outcomes.")] = None,
    url: Annotated[
        str | None, typer.Option(help="Database for --sql (default: the store itself).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model, for outcomes by entity.")] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Load observed labels: columns label and prediction_id, or entity and time."""
    from mlprod.data import load_frame
    from mlprod.monitoring import ingest_outcomes, match_outcomes
    from mlprod.spec import SqlSource

    if (source is None) == (sql is None):
        raise SpecError("give a file or --sql QUERY (one of them)")
    settings = settings_for(store)
    frame = load_frame(
        source
        if source is not None
        else SqlSource(url=url or settings.store_url(), query=sql or "")
    )
    outcomes = _outcomes(frame)
    meta, _ = open_stores(settings)
    with meta:
        counts = ingest_outcomes(meta, outcomes, model=model)
        counts["matched"] = match_outcomes(meta, bucket_seconds=settings.monitor_bucket)
    if json:
        print_json(counts)
        return
    console.print(
        f"{counts['received']:,} outcomes stored ({counts['duplicates']:,} already "
        f"there), {counts['matched']:,} matched to predictions"
    )


def _outcomes(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as outcome dicts: the columns that matter, missing values dropped."""
    import pandas as pd

    if "label" not in frame:
        raise DataError(
            f"outcomes need a label column (columns: {', '.join(map(str, frame.columns))})"
        )
    if "prediction_id" not in frame and not {"entity", "time"} <= set(frame.columns):
        raise DataError("outcomes need a prediction_id column, or entity and time columns")
    keep = [c for c in ("prediction_id", "entity", "time", "label", "model") if c in frame]
    rows = []
    for raw in frame[keep].to_dict("records"):
        row = {str(k): (None if pd.isna(v) else v) for k, v in raw.items()}
        moment = row.get("time")
        if isinstance(moment, pd.Timestamp):
            row["time"] = moment.isoformat()
        if row.get("entity") is not None:
            row["entity"] = str(row["entity"])
        rows.append(row)
    return rows

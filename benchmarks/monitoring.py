"""Monitoring benchmark: a drift report's cost against the traffic it covers.

One command::

    .venv/bin/python benchmarks/monitoring.py              # about a minute
    .venv/bin/python benchmarks/monitoring.py --raw-max 100000   # a quicker baseline

It trains the quickstart's churn model into a temporary SQLite store, then for 10k, 1M
and 100M predictions over one day (24 hourly windows) merges the live counts a server
would have merged (the histogram path) and times `build_report`: drift of every feature
and the score, traffic and estimated performance. Beside it, the baseline: drift
computed from the raw prediction log (read every logged row, bin it, compare), for as
many rows as `--raw-max` allows; its time grows with the rows, the histogram path's
does not. Counting cost inside the server is measured by benchmarks/serve.py
("mlprod serve, no monitoring").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from mlprod.data import make_churn_table
from mlprod.features import json_safe
from mlprod.monitoring import Binner, LiveStats, build_report, merge_live_stats
from mlprod.monitoring._drift import drift_stats
from mlprod.pipelines import load, train
from mlprod.pipelines._quickstart import SPEC
from mlprod.predlog import insert_predictions, read_predictions
from mlprod.registry import create_run
from mlprod.store import LocalArtifacts, Store

SIZES = (10_000, 1_000_000, 100_000_000)
WINDOWS = 24
SAMPLE = 20_000  # distinct records scored once; larger totals repeat their counts


def setup(folder: Path) -> tuple[str, LocalArtifacts]:
    make_churn_table(20_000, seed=7).to_csv(folder / "customers.csv", index=False)
    (folder / "mlprod.yaml").write_text(SPEC, encoding="utf-8")
    store = str(folder / ".mlprod")
    train(folder / "mlprod.yaml", store=store)
    return store, LocalArtifacts(folder / ".mlprod" / "artifacts")


def seed_counts(url: str, model_store: str, total: int, start: datetime) -> None:
    """Merge the counts of `total` predictions spread over 24 hourly windows."""
    model = load("churn@1", store=model_store)
    binner = Binner(model.reference or {})
    frame = make_churn_table(SAMPLE, seed=9).drop(columns=["churned"])
    scores = model.score(frame)
    stats = LiveStats(3600)
    stats.add("churn", 1, start, scores, threshold=model.threshold, binner=binner, frame=frame)
    (unit,) = stats.drain().values()
    per_window = total / WINDOWS / SAMPLE
    windows = {}
    for hour in range(WINDOWS):
        counts = type(unit)(
            predictions=round(unit.predictions * per_window),
            predicted_positive=round(unit.predicted_positive * per_window),
            est_tp=unit.est_tp * per_window,
            est_positive=unit.est_positive * per_window,
            score_hist=np.round(unit.score_hist * per_window).astype(np.int64),
            features={
                k: np.round(v * per_window).astype(np.int64) for k, v in unit.features.items()
            },
        )
        windows[("churn", 1, start + timedelta(hours=hour))] = counts
    with Store.open(url) as store:
        merge_live_stats(store, windows)


def time_report(url: str, artifacts: LocalArtifacts, start: datetime) -> float:
    with Store.open(url) as store:
        began = time.perf_counter()
        report = build_report(
            store,
            artifacts,
            "churn",
            window=timedelta(hours=1),
            since=start,
            until=start + timedelta(days=1),
        )
        elapsed = time.perf_counter() - began
    assert len(report.drift) == WINDOWS * 12, len(report.drift)  # 11 features + score
    return elapsed


def raw_baseline(folder: Path, model_store: str, rows: int) -> float:
    """Drift from the raw log: insert `rows` predictions, then read, bin and compare them."""
    url = f"sqlite:///{folder / f'raw-{rows}.db'}"
    model = load("churn@1", store=model_store)
    frame = make_churn_table(min(rows, SAMPLE), seed=9).drop(columns=["churned"])
    records = [{k: json_safe(v) for k, v in r.items()} for r in frame.to_dict("records")]
    at = datetime.now(UTC)
    with Store.open(url) as store:
        create_run(store, "churn", user="bench", spec={}, git_commit=None, library_versions={})
        for offset in range(0, rows, 50_000):
            batch = [
                {
                    "id": uuid.uuid4().hex,
                    "model": "churn",
                    "version": 1,
                    "at": at,
                    "record": records[i % len(records)],
                    "score": 0.5,
                    "label": False,
                    "latency_ms": 1.0,
                }
                for i in range(offset, min(rows, offset + 50_000))
            ]
            insert_predictions(store, batch)
        began = time.perf_counter()
        logged = read_predictions(store, "churn")
        binner = Binner(model.reference or {})
        counts = binner.count_records(logged["record"].tolist())
        for name, feature in binner.features.items():
            drift_stats(
                counts[name], np.asarray(feature["counts"]), categorical="categories" in feature
            )
        return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw-max", type=int, default=1_000_000, help="largest raw baseline")
    args = parser.parse_args(argv)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    lines = []
    with tempfile.TemporaryDirectory(prefix="mlprod-bench-") as tmp:
        folder = Path(tmp)
        print("training the quickstart model ...")
        model_store, artifacts = setup(folder)
        url = f"sqlite:///{folder / '.mlprod' / 'mlprod.db'}"
        for size in SIZES:
            with Store.open(url) as store, store.engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM window_stats")
                conn.exec_driver_sql("DELETE FROM feature_counts")
            seed_counts(url, model_store, size, start)
            report = min(time_report(url, artifacts, start) for _ in range(3))
            raw = raw_baseline(folder, model_store, size) if size <= args.raw_max else None
            lines.append((size, report, raw))
            print(f"  {size:>11,} predictions measured")
    print()
    print(f"{'predictions':>13}  {'histogram path (report)':>24}  {'raw log (drift only)':>21}")
    for size, report, raw in lines:
        raw_text = f"{raw:,.2f} s" if raw is not None else "not run (--raw-max)"
        print(f"{size:>13,}  {report * 1000:>21,.1f} ms  {raw_text:>21}")
    print()
    print(f"{WINDOWS} hourly windows, 11 features + the score, SQLite store; best of 3 reports")
    return 0


if __name__ == "__main__":
    sys.exit(main())

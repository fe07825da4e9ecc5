"""Business value per live window: each version's own matrix over its labelled outcomes,
on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlprod.bundle import write_bundle
from mlprod.dashboard._app import Dashboard
from mlprod.features import FeatureTransformer
from mlprod.monitoring import build_report
from mlprod.monitoring._outcomes import ingest_outcomes, match_outcomes
from mlprod.monitoring._value import live_value
from mlprod.predlog import insert_predictions
from mlprod.registry import create_run, register_version
from mlprod.settings import Settings
from mlprod.store import LocalArtifacts, Store
from mlprod.training import make_estimator

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
MATRIX = {"tp": 90.0, "fp": -10.0, "tn": 0.0, "fn": -30.0}


def test_live_value_and_its_interval_by_hand() -> None:
    counts = {"tp": 4, "fp": 6, "tn": 80, "fn": 10}
    found = live_value(counts, MATRIX)
    assert found["value"] == 4 * 90 - 6 * 10 - 10 * 30
    mean = found["value"] / 100
    variance = 4 * (90 - mean) ** 2 + 6 * (-10 - mean) ** 2 + 80 * mean**2 + 10 * (-30 - mean) ** 2
    half = 1.96 * math.sqrt(variance)  # n x (spread / n)
    assert found["value_low"] == pytest.approx(found["value"] - half)
    assert found["value_high"] == pytest.approx(found["value"] + half)
    assert found["value_per_row"] == pytest.approx(mean)
    assert live_value({}, MATRIX)["value"] is None


def _bundle(artifacts: LocalArtifacts, folder: Path) -> str:
    """A real, small bundle (no reference bins, so windows are judged on labels alone)."""
    frame = pd.DataFrame({"amount": np.arange(40.0)})
    y = (frame["amount"] > 20).to_numpy().astype(int)
    transformer = FeatureTransformer(kinds={"amount": "numeric"}).fit(frame)
    estimator = make_estimator("logistic_regression", {}, seed=0)
    estimator.fit(transformer.transform(frame), y)
    folder.mkdir()
    write_bundle(
        folder, name="churn", run_id="0" * 32, transformer=transformer, estimator=estimator,
        threshold=0.5, signature={"fields": [], "classes": [False, True]}, test_frame=frame,
        y_test=y, expected_scores=estimator.predict_proba(transformer.transform(frame))[:, 1],
    )  # fmt: skip
    return artifacts.put_dir(folder)


def _version(store: Store, bundle: str, value: dict[str, float] | None) -> int:
    spec = {"value": value} if value else {}
    run = create_run(store, "churn", user="ana", spec=spec, git_commit=None, library_versions={})
    return register_version(
        store, "churn", run_id=run, bundle_id=bundle, flavor="sklearn", metrics={},
        gates=[], gates_passed=True, signature={"fields": [], "classes": [False, True]},
        threshold=0.5, files={},
    ).version  # fmt: skip


def _scenario(
    store: Store, tmp_path: Path, t0: datetime
) -> tuple[LocalArtifacts, list[dict[str, Any]], dict[int, bool]]:
    """Versions 1 (with a matrix) and 2 (without), 80 predictions from `t0` on, all labelled."""
    artifacts = LocalArtifacts(tmp_path / "artifacts")
    bundle = _bundle(artifacts, tmp_path / "bundle")
    _version(store, bundle, MATRIX)
    _version(store, bundle, None)  # a version trained without a matrix has no value
    rows, labels = [], {}
    for i in range(80):
        version = 1 + i % 2
        score = 0.8 if i % 4 < 2 else 0.2
        at = t0 + timedelta(minutes=30 * (i % 4 >= 2) + i % 7)
        rows.append(
            {"id": f"{i:032x}", "model": "churn", "version": version, "at": at,
             "record": {"i": i}, "score": score, "label": score >= 0.5, "latency_ms": 1.0,
             "entity": None, "shadow_of": None}
        )  # fmt: skip
        labels[i] = i % 3 == 0
    assert insert_predictions(store, rows) == 80
    ingest_outcomes(
        store,
        [{"prediction_id": f"{i:032x}", "label": y} for i, y in labels.items()],
        model="churn",
    )
    assert match_outcomes(store, bucket_seconds=60) == 80
    return artifacts, rows, labels


def test_each_live_window_carries_the_value_of_its_labelled_outcomes(
    store: Store, tmp_path: Path
) -> None:
    artifacts, rows, labels = _scenario(store, tmp_path, T0)
    report = build_report(store, artifacts, "churn", window=timedelta(minutes=30), since=T0)
    windows = [p for p in report.performance if p.version == 1]
    assert len(windows) == 2
    for window in windows:
        start = datetime.fromisoformat(str(window.window_start))
        mine = [
            i for i, r in enumerate(rows)
            if r["version"] == 1 and start <= r["at"] < start + timedelta(minutes=30)
        ]  # fmt: skip
        flagged = {i: rows[i]["score"] >= 0.5 for i in mine}
        by_hand = sum(
            MATRIX["tp"] if flagged[i] and labels[i] else MATRIX["fp"] if flagged[i]
            else MATRIX["fn"] if labels[i] else MATRIX["tn"]
            for i in mine
        )  # fmt: skip
        assert window.value == pytest.approx(by_hand)
        assert window.value_low is not None and window.value_low <= by_hand
        assert window.value_per_row == pytest.approx(by_hand / len(mine))
    assert all(p.value is None for p in report.performance if p.version == 2)
    period = next(p for p in report.live if p.version == 1)
    assert period.value == pytest.approx(sum(w.value or 0.0 for w in windows))


def test_the_dashboard_shows_each_versions_live_value(store: Store, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    artifacts, rows, labels = _scenario(store, tmp_path, start)
    board = Dashboard(Settings(store=str(store.url)), store, artifacts)
    html = board.live_update("model", "churn", "24h")["html"]
    cells = dict(re.findall(r'<tr data-version="(\d+)">.*?data-field="live-value" '
                            r'data-value="([^"]*)"', html, flags=re.S))  # fmt: skip
    mine = [i for i, r in enumerate(rows) if r["version"] == 1]
    by_hand = sum(
        MATRIX["tp"] if rows[i]["label"] and labels[i] else MATRIX["fp"] if rows[i]["label"]
        else MATRIX["fn"] if labels[i] else MATRIX["tn"]
        for i in mine
    )  # fmt: skip
    assert float(cells["1"]) == pytest.approx(by_hand)
    assert cells["2"] == ""  # no matrix, no value: the cell says so
    assert "live value (95% CI)" in html

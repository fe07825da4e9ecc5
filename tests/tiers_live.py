"""Live traffic of a multiclass (tiers) version, written as a server and outcome ingestion do.

Answers are the trained model's own (label = most probable class, score = its
probability); they reach the prediction log as a server's log entries, the live counts
through `LiveStats` with the answered labels, and outcomes through `ingest_outcomes`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

import mlprod
from mlprod.bundle import read_reference
from mlprod.features import json_safe
from mlprod.monitoring import (
    Binner,
    LiveStats,
    ingest_outcomes,
    match_outcomes,
    merge_live_stats,
)
from mlprod.pipelines import promote, train
from mlprod.predlog import insert_entries, prediction_entry
from mlprod.registry import create_run, get_run, get_version, register_version
from mlprod.store import ArtifactStore, Store, open_artifacts
from support import Project
from tiers_kit import SPEC, make_tiers, write_tiers

MODEL = "tiers"
BUCKET = 60


def copy_version(source: Store, target: Store, version: int) -> int:
    """Register `source`'s trained version in `target` as training did (same bundle)."""
    record = get_version(source, MODEL, version)
    run = get_run(source, record.run_id)
    run_id = create_run(
        target, MODEL, user="ana", spec=run.spec, git_commit=None, library_versions={}
    )
    return register_version(
        target, MODEL, run_id=run_id, bundle_id=record.bundle_id, flavor=record.flavor,
        metrics=record.metrics, gates=record.gates, gates_passed=record.gates_passed,
        signature=record.signature, threshold=record.threshold, files=record.files,
    ).version  # fmt: skip


def answers(model: mlprod.Model, frame: pd.DataFrame) -> tuple[list[Any], np.ndarray]:
    """What a server answers for each row: (labels, top-class probabilities)."""
    proba = model.predict_proba(frame.drop(columns=["tier"]))
    classes = list(model.classes)
    return [classes[i] for i in np.argmax(proba, axis=1)], proba.max(axis=1)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = frame.drop(columns=["tier"]).to_dict("records")
    return [{k: json_safe(v) for k, v in row.items()} for row in rows]


def serve(
    store: Store,
    artifacts: ArtifactStore,
    version: int,
    frame: pd.DataFrame,
    labels: list[Any],
    scores: np.ndarray,
    at: datetime,
) -> list[str]:
    """Log and count one request's answers at `at`, as a server would; their ids."""
    rows = records(frame)
    ids = [uuid.uuid4().hex for _ in rows]
    predictions = [
        {"id": i, "version": version, "label": label, "score": float(score)}
        for i, label, score in zip(ids, labels, scores, strict=True)
    ]
    entry = prediction_entry(MODEL, rows, predictions, at=at, latency_ms=2.0)
    assert insert_entries(store, [orjson.dumps(entry)]) == len(rows)
    record = get_version(store, MODEL, version)
    stats = LiveStats(bucket_seconds=BUCKET)
    stats.add(
        MODEL, version, at, np.asarray(scores, dtype=float), threshold=record.threshold,
        binner=binner(artifacts, record.bundle_id), records=rows, labels=labels,
    )  # fmt: skip
    merge_live_stats(store, stats.drain())
    return ids


def binner(artifacts: ArtifactStore, bundle_id: str) -> Binner:
    reference = read_reference(artifacts.path(bundle_id))
    assert reference is not None and "predicted" in reference
    return Binner(reference)


def trained_with_traffic(root: Path, *, spec: str = SPEC) -> Project:
    """A promoted tiers version with three hours of answers, 300 of them labelled an hour.

    Answers are logged and counted one, two and three hours ago (whole windows of the
    last day, as `mlprod monitor` and the dashboard show it); two more outcomes name no
    class of the model.
    """
    write_tiers(root, spec.replace("[logistic_regression, lightgbm]", "[lightgbm]"))
    project = Project(root)
    settings = project.settings()
    train(project.spec, settings=settings)
    promote(MODEL, 1, "production", settings=settings, actor="test")
    model = mlprod.load(f"{MODEL}@1", store=project.store)
    now = datetime.now(UTC)
    with Store.open(settings.store_url()) as store:
        artifacts = open_artifacts(settings)
        for hours in (3, 2, 1):
            frame = make_tiers(700, seed=hours)
            labels, scores = answers(model, frame)
            ids = serve(store, artifacts, 1, frame, labels, scores, now - timedelta(hours=hours))
            pairs = zip(ids[:300], frame["tier"].head(300), strict=True)
            outcomes = [{"prediction_id": i, "label": y} for i, y in pairs]
            if hours == 1:
                outcomes += [{"prediction_id": i, "label": "platinum"} for i in ids[300:302]]
            ingest_outcomes(store, outcomes)
        match_outcomes(store, bucket_seconds=BUCKET)
    return project

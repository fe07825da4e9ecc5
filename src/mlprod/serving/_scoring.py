"""Scoring a request: pick each record's version by its route, validate, score, label.

Pure functions over a `LoadedVersion` or a model's live routes (`Served`), shared by the
REST handlers and the shadow scorer, so a shadow scores exactly as its primary would.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from mlprod.bundle import multiclass_answers
from mlprod.serving._loaded import LoadedVersion
from mlprod.serving._pool import Served


def route_records(target: LoadedVersion | Served, records: Any, max_records: int) -> dict[str, Any]:
    """Score each record with the version its route picks (sticky by entity when known)."""
    if isinstance(target, LoadedVersion):
        return score_records(target, records, max_records)
    if len(target.routes) == 1 or not isinstance(records, list):
        return score_records(target.routes[0], records, max_records)
    entity = target.routes[0].signature.get("entity")
    groups: dict[int, list[int]] = {}
    chosen: dict[int, LoadedVersion] = {}
    for index, record in enumerate(records):
        key = record.get(entity) if entity and isinstance(record, dict) else None
        model = target.choose(key)
        groups.setdefault(id(model), []).append(index)
        chosen[id(model)] = model
    predictions: list[Any] = [None] * len(records)
    for ident, indices in groups.items():
        part = score_records(chosen[ident], [records[i] for i in indices], max_records)
        for i, prediction in zip(indices, part["predictions"], strict=True):
            predictions[i] = prediction
    return {"model": target.name, "predictions": predictions}


def prediction_ids(count: int) -> list[str]:
    """`count` unique 128-bit ids as 32 hex digits: the time in ms, then 80 random bits.

    Time first (as in UUIDv7) so the log's primary key grows at its right edge: random
    keys dirtied a different index page for almost every stored row, which made inserts
    several times dearer on SQLite and PostgreSQL alike. The random part comes from one
    system call per request (uuid4 makes one per id, a few microseconds each).
    """
    prefix = f"{time.time_ns() // 1_000_000:012x}"
    text = os.urandom(10 * count).hex()
    return [prefix + text[start : start + 20] for start in range(0, 20 * count, 20)]


def score_records(model: LoadedVersion, records: Any, max_records: int) -> dict[str, Any]:
    """Validate, score and label records; non-finite scores come back as null, flagged.

    A multiclass version answers each record's most probable class as its label, that
    class's probability as its score, and every class's under ``probabilities``.
    """
    scores = model.score_records(records, max_records=max_records)
    if model.multiclass:
        return {"model": model.name, "predictions": _class_predictions(model, scores)}
    negative, positive = model.classes
    version, threshold = model.version, model.threshold  # properties: read once, not per record
    ids = prediction_ids(len(scores))
    values = scores.tolist()
    if all(map(math.isfinite, values)):  # the usual case, one comprehension
        predictions = [
            {
                "id": ident,
                "version": version,
                "score": score,
                "label": positive if score >= threshold else negative,
            }
            for ident, score in zip(ids, values, strict=True)
        ]
        return {"model": model.name, "predictions": predictions}
    predictions = []
    for ident, score in zip(ids, values, strict=True):
        finite = math.isfinite(score)
        item: dict[str, Any] = {
            "id": ident,
            "version": version,
            "score": score if finite else None,
            "label": (positive if score >= threshold else negative) if finite else None,
        }
        if not finite:
            item["flags"] = ["non_finite_score"]
        predictions.append(item)
    return {"model": model.name, "predictions": predictions}


def _class_predictions(model: LoadedVersion, scores: np.ndarray) -> list[dict[str, Any]]:
    """A multiclass version's answers, as the library's `Model.predict_record` gives them."""
    ids, version = prediction_ids(len(scores)), model.version
    return [
        {"id": ident, "version": version, **answer}
        for ident, answer in zip(ids, multiclass_answers(scores, model.classes), strict=True)
    ]

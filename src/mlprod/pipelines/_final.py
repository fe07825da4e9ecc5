"""After selection: the final fit, business value, and live training curves.

``training.final_fit: train+validation`` refits the chosen model (its type and params,
threshold unchanged) on every non-test row, so the shipped model learns from the rows
selection held back; the test metrics of the selected and the refitted model are both
recorded, so the effect is visible. Business value under the spec's ``value:`` matrix is
added to the test metrics with its bootstrap interval.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import clone

from mlprod.evaluation import MetricValue, business_value, evaluate
from mlprod.pipelines._progress import Steps
from mlprod.registry import record_curve
from mlprod.spec import ProjectSpec
from mlprod.store import Store
from mlprod.training import CandidateResult

LIVE_EVERY = 1.0  # seconds between a running network's curve writes


def live_curves(store: Store, run_id: str) -> Any:
    """An epoch callback that stores a candidate's curve at most every `LIVE_EVERY` s.

    The run's curves are written once more in full when it ends.
    """
    last: dict[str, float] = {}

    def write(candidate: str, curve: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - last.get(candidate, float("-inf")) >= LIVE_EVERY:
            last[candidate] = now
            record_curve(store, run_id, candidate, curve)

    return write


def value_metrics(
    spec: ProjectSpec, y: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, MetricValue]:
    """``value`` and ``value_per_row`` on these rows, when the spec has a value matrix."""
    if spec.value is None:
        return {}
    return business_value(y, scores, threshold, spec.value.matrix(), seed=spec.seed)


def held_out_metrics(
    spec: ProjectSpec, y: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, MetricValue]:
    """Every test metric with its interval, value included when the spec defines it."""
    metrics = evaluate(y, scores, threshold)  # the defaults every gate check uses
    return {**metrics, **value_metrics(spec, y, scores, threshold)}


def final_fit(
    spec: ProjectSpec,
    winner: CandidateResult,
    X: np.ndarray,
    y: np.ndarray,
    split: Any,
    steps: Steps,
) -> bool:
    """Refit `winner` on training + validation rows when the spec asks; True if it did.

    With cross-validation the winner was already refitted on every non-test row.
    """
    if spec.training.final_fit != "train+validation" or spec.split.method == "cv":
        return False
    rows = np.concatenate([split.train, split.validation])
    steps(f"final fit: refitting {winner.name} on {len(rows):,} training + validation rows")
    winner.estimator = clone(winner.estimator).fit(X[rows], y[rows])
    return True


def final_fit_effect(
    before: dict[str, MetricValue], after: dict[str, MetricValue]
) -> dict[str, dict[str, float]]:
    """Each test metric for the selected model (train) and the refitted one."""
    return {
        name: {"train": round(before[name].value, 6), "train+validation": round(value.value, 6)}
        for name, value in after.items()
        if name in before
    }


def describe_effect(effect: dict[str, dict[str, float]], metric: str) -> str:
    """E.g. ``train+validation (roc_auc on test 0.812 -> 0.825)``."""
    pair = effect.get(metric) or next(iter(effect.values()))
    return (
        f"train+validation ({metric} on test {pair['train']:.4g} -> {pair['train+validation']:.4g})"
    )

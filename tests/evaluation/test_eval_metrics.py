"""evaluate(): sklearn parity, bootstrap intervals, input errors and speed."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mlprod.errors import TrainingError
from mlprod.evaluation import MetricValue, evaluate
from mlprod.evaluation._metrics import METRIC_NAMES, _metrics, _prepare


def scored(rng: np.random.Generator, n: int, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and calibrated-ish probabilities with some signal."""
    y = (rng.random(n) < 0.3).astype(int)
    scores = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=n) - 0.8)))
    return y, scores


def sklearn_metrics(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (s >= threshold).astype(int)
    return {
        "roc_auc": roc_auc_score(y, s),
        "average_precision": average_precision_score(y, s),
        "log_loss": log_loss(y, s, labels=[0, 1]),
        "brier": brier_score_loss(y, s),
        "precision": precision_score(y, predicted, zero_division=0),
        "recall": recall_score(y, predicted, zero_division=0),
        "f1": f1_score(y, predicted, zero_division=0),
    }


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 0.9, 1.01])
@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_point_values_equal_sklearn(
    rng: np.random.Generator, threshold: float, decimals: int | None
) -> None:
    y, s = scored(rng, 3000)
    if decimals is not None:  # rounding creates many tied scores
        s = np.round(s, decimals)
    got = evaluate(y, s, threshold, n_boot=5)
    expected = sklearn_metrics(y, s, threshold)
    assert list(got) == list(METRIC_NAMES)
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, abs=1e-9), name


def test_point_values_equal_sklearn_with_certain_scores(rng: np.random.Generator) -> None:
    """Scores of exactly 0 and 1 are clipped for log loss the way sklearn clips them."""
    y, s = scored(rng, 500)
    s[:20] = 0.0
    s[20:40] = 1.0
    got = evaluate(y, s, 0.5, n_boot=5)
    for name, value in sklearn_metrics(y, s, 0.5).items():
        assert got[name].value == pytest.approx(value, abs=1e-9), name


def test_each_resample_equals_sklearn_on_the_resampled_rows(rng: np.random.Generator) -> None:
    """The count-weighted formulas give what sklearn gives on the materialised resample."""
    y, s = scored(rng, 400)
    s = np.round(s, 2)
    rows = _prepare(y, s, 0.4)
    order = np.argsort(-s, kind="mergesort")
    counts = np.stack([np.bincount(rng.integers(0, 400, 400), minlength=400) for _ in range(5)])
    got = _metrics(rows, counts.astype(float))
    for b in range(5):
        expected = sklearn_metrics(
            np.repeat(y[order], counts[b]), np.repeat(s[order], counts[b]), 0.4
        )
        for name, value in expected.items():
            assert got[name][b] == pytest.approx(value, abs=1e-9), (name, b)


def test_interval_contains_point_and_is_ordered(rng: np.random.Generator) -> None:
    y, s = scored(rng, 2000)
    for name, metric in evaluate(y, s, 0.5).items():
        assert metric.low <= metric.value <= metric.high, name
        assert metric.low < metric.high, name


def test_interval_narrows_with_more_data(rng: np.random.Generator) -> None:
    small = evaluate(*scored(rng, 300), 0.5, seed=1)
    large = evaluate(*scored(rng, 6000), 0.5, seed=1)
    for name in METRIC_NAMES:
        assert large[name].high - large[name].low < small[name].high - small[name].low, name
        # sqrt(20) more data: the width should shrink by roughly 4.5x, at least 2x.
        assert 2 * (large[name].high - large[name].low) < small[name].high - small[name].low


def test_interval_is_95_percent_wide(rng: np.random.Generator) -> None:
    """Recall is a proportion: its 95% interval spans about 2 x 1.96 standard errors."""
    y, s = scored(rng, 6000)
    recall = evaluate(y, s, 0.5, n_boot=400)["recall"]
    standard_error = np.sqrt(recall.value * (1 - recall.value) / y.sum())
    assert recall.high - recall.low == pytest.approx(2 * 1.96 * standard_error, rel=0.2)


def test_seed_makes_intervals_reproducible(rng: np.random.Generator) -> None:
    y, s = scored(rng, 1000)
    assert evaluate(y, s, 0.5, seed=7) == evaluate(y, s, 0.5, seed=7)
    assert evaluate(y, s, 0.5, seed=7)["roc_auc"] != evaluate(y, s, 0.5, seed=8)["roc_auc"]


def test_one_class_resamples_are_skipped_for_ranking_metrics(rng: np.random.Generator) -> None:
    """With one positive in 12 rows many resamples lack it; AUC and AP stay defined."""
    y = np.zeros(12, dtype=int)
    y[3] = 1
    s = rng.random(12)
    result = evaluate(y, s, 0.5, n_boot=300)
    for name in ("roc_auc", "average_precision"):
        assert 0.0 <= result[name].low <= result[name].high <= 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise_with_count(rng: np.random.Generator, bad: float) -> None:
    y, s = scored(rng, 100)
    s[[3, 50, 77]] = bad
    with pytest.raises(TrainingError, match="3 non-finite score"):
        evaluate(y, s, 0.5)


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1, 1], [0.1, 0.2], "3 labels and 2 scores"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "0/1"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
        ([0, 0, 0], [0.1, 0.2, 0.3], "both classes"),
        ([0, 1, 1], [0.1, 1.2, 0.3], r"probabilities in \[0, 1\]"),
        ([0, 1, 1], [-0.1, 0.2, 0.3], r"probabilities in \[0, 1\]"),
    ],
)
def test_invalid_inputs_raise(y: list[int], s: list[float], match: str) -> None:
    with pytest.raises(TrainingError, match=match):
        evaluate(np.array(y), np.array(s), 0.5)


def test_n_boot_must_be_positive() -> None:
    with pytest.raises(TrainingError, match="n_boot"):
        evaluate(np.array([0, 1]), np.array([0.2, 0.8]), 0.5, n_boot=0)


def test_metric_value_is_frozen() -> None:
    metric = MetricValue(value=0.8, low=0.7, high=0.9)
    with pytest.raises(ValidationError):
        metric.value = 0.5  # type: ignore[misc]

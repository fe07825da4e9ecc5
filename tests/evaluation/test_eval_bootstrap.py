"""The bootstrap behind evaluate(): the same resamples as the row-count formulas, the same
values per resample, and sklearn's values on each materialised resample."""

from __future__ import annotations

import numpy as np
import pytest
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
from mlprod.evaluation import evaluate, paired_bootstrap
from mlprod.evaluation._metrics import (
    METRIC_NAMES,
    _bootstrap_counts,
    _by_class,
    _class_counts,
    _draws,
    _interval,
    _metrics,
    _prepare,
    _resampled,
)

EXACT = ("roc_auc", "precision", "recall", "f1")  # ratios of integer sums
SUMMED = ("average_precision", "log_loss", "brier")  # float sums, added in another order


def scored(rng: np.random.Generator, n: int, decimals: int | None) -> tuple[np.ndarray, ...]:
    y = (rng.random(n) < 0.3).astype(np.int64)
    s = 1 / (1 + np.exp(-((2 * y - 1) + rng.normal(size=n) - 0.8)))
    return y, (s if decimals is None else np.round(s, decimals))


def row_counts(draws: np.ndarray) -> np.ndarray:
    """The reference: how often each (sorted) row was drawn, one row per resample."""
    n = draws.shape[1]
    return np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64)


def test_draws_are_one_stream_whatever_the_batching() -> None:
    """Batches of 32-bit draws replay one 64-bit call, so batch size never moves a value."""
    for n in (7, 1_000, 40_000, 250_001):
        whole = np.random.default_rng(3).integers(0, n, size=(9, n))
        batched = np.concatenate(list(_draws(n, 9, seed=3)))
        assert batched.dtype == np.int32
        np.testing.assert_array_equal(batched, whole)


def test_bootstrap_counts_are_the_drawn_rows() -> None:
    counts = np.concatenate(list(_bootstrap_counts(500, 20, seed=5)))
    np.testing.assert_array_equal(counts, row_counts(np.concatenate(list(_draws(500, 20, 5)))))
    assert counts.sum(axis=1).tolist() == [500.0] * 20


@pytest.mark.parametrize("decimals", [None, 3, 2, 1])
@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 1.01])
def test_each_resample_equals_the_row_count_formulas(
    rng: np.random.Generator, decimals: int | None, threshold: float
) -> None:
    """Per resample: AUC, precision, recall and f1 to the bit, the float sums to 1e-12."""
    y, s = scored(rng, 3_000, decimals)
    s[:10], s[10:20] = 0.0, 1.0  # certain scores are clipped for log loss
    rows = _prepare(y, s, threshold)
    by_class = _by_class(rows)
    draws = np.concatenate(list(_draws(y.size, 40, seed=11)))
    got = _resampled(by_class, _class_counts(by_class, draws))
    expected = _metrics(rows, row_counts(draws))
    for name in EXACT:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    for name in SUMMED:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-12, err_msg=name)


def test_one_class_resamples_are_nan_in_both(rng: np.random.Generator) -> None:
    y = np.zeros(12, dtype=np.int64)
    y[3] = 1
    s = np.round(rng.random(12), 1)
    rows = _prepare(y, s, 0.5)
    by_class = _by_class(rows)
    draws = np.concatenate(list(_draws(12, 200, seed=2)))
    got = _resampled(by_class, _class_counts(by_class, draws))
    expected = _metrics(rows, row_counts(draws))
    assert np.isnan(got["roc_auc"]).sum() > 50  # most resamples miss the one positive
    for name in METRIC_NAMES:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-12, err_msg=name)


def test_each_resample_equals_sklearn_on_its_rows(rng: np.random.Generator) -> None:
    y, s = scored(rng, 600, 2)
    threshold = 0.4
    rows = _prepare(y, s, threshold)
    by_class = _by_class(rows)
    draws = np.concatenate(list(_draws(y.size, 4, seed=0)))
    got = _resampled(by_class, _class_counts(by_class, draws))
    order = np.argsort(-s, kind="mergesort")  # draws index the rows sorted by score
    for b in range(4):
        yb, sb = y[order][draws[b]], s[order][draws[b]]
        predicted = (sb >= threshold).astype(int)
        expected = {
            "roc_auc": roc_auc_score(yb, sb),
            "average_precision": average_precision_score(yb, sb),
            "log_loss": log_loss(yb, sb, labels=[0, 1]),
            "brier": brier_score_loss(yb, sb),
            "precision": precision_score(yb, predicted, zero_division=0),
            "recall": recall_score(yb, predicted, zero_division=0),
            "f1": f1_score(yb, predicted, zero_division=0),
        }
        for name, value in expected.items():
            assert got[name][b] == pytest.approx(value, abs=1e-9), (name, b)


@pytest.mark.parametrize("decimals", [None, 2])
def test_intervals_equal_the_row_count_loop(rng: np.random.Generator, decimals: int | None) -> None:
    """evaluate() against the loop it replaced: _metrics over _bootstrap_counts, same seed."""
    y, s = scored(rng, 5_000, decimals)
    got = evaluate(y, s, 0.45, n_boot=300, seed=4)
    rows = _prepare(y, s, 0.45)
    batches = [_metrics(rows, counts) for counts in _bootstrap_counts(y.size, 300, 4)]
    point = _metrics(rows, np.ones((1, y.size)))
    for name in METRIC_NAMES:
        low, high = _interval(np.concatenate([b[name] for b in batches]))
        assert got[name].value == float(point[name][0]), name
        if name in EXACT:
            assert (got[name].low, got[name].high) == (low, high), name
        else:
            assert got[name].low == pytest.approx(low, abs=1e-12), name
            assert got[name].high == pytest.approx(high, abs=1e-12), name


@pytest.mark.parametrize("decimals", [None, 1])
def test_paired_gaps_equal_sklearn_on_the_same_resampled_rows(
    rng: np.random.Generator, decimals: int | None
) -> None:
    """Both score sets meet the same rows of each resample (drawn from the original row
    order, not each one's sorted order); one-class resamples are left out."""
    y = np.array([1, 0, 0, 1] + [0] * 10)  # two positives in 14: some resamples have none
    a, b = (np.clip(0.3 * y + rng.random(y.size) * 0.7, 0.01, 0.99) for _ in range(2))
    if decimals is not None:  # ties
        a, b = np.round(a, decimals), np.round(b, decimals)
    scorers = {
        "roc_auc": roc_auc_score,
        "average_precision": average_precision_score,
        "log_loss": lambda yr, sr: log_loss(yr, sr, labels=[0, 1]),
    }
    draws = np.random.default_rng(2).integers(0, y.size, size=(40, y.size))
    kept = [rows for rows in draws if 0 < y[rows].sum() < y.size]
    assert 0 < len(kept) < len(draws)
    for name, score in scorers.items():
        got = paired_bootstrap(y, a, b, name, n_boot=40, seed=2)
        expected = [score(y[rows], b[rows]) - score(y[rows], a[rows]) for rows in kept]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=name)
    assert (paired_bootstrap(y, a, a.copy(), "roc_auc", n_boot=50) == 0).all()


def test_paired_bootstrap_refuses_a_threshold_metric_and_unequal_rows() -> None:
    y, s = np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.4, 0.6])
    with pytest.raises(TrainingError, match="not 'f1'"):
        paired_bootstrap(y, s, s, "f1")
    with pytest.raises(TrainingError, match="one score per label"):
        paired_bootstrap(y, s, s[:3], "roc_auc")

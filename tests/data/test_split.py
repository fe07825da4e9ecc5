"""Splits: parts disjoint and covering, classes balanced, and no leakage across time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlprod.data import Split, make_split
from mlprod.errors import DataError
from mlprod.spec import SplitSpec


@pytest.fixture
def labels(rng: np.random.Generator) -> np.ndarray:
    return rng.random(5_000) < 0.23


@pytest.fixture
def times(rng: np.random.Generator) -> pd.Series:
    # Whole hours over a year, so many rows share a time (ties at the window edges).
    hours = rng.integers(0, 365 * 24, 5_000)
    return pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(hours, unit="h"), name="at")


def _assert_partition(split: Split, n: int, *, dropped: int = 0) -> None:
    parts = [split.train, split.validation, split.test]
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)), "parts overlap"
    assert len(joined) == n - dropped
    assert joined.min() >= 0
    assert joined.max() < n


def test_stratified_keeps_class_rates_and_covers_rows(labels: np.ndarray) -> None:
    split = make_split(labels, SplitSpec(test_size=0.2, validation_size=0.25), seed=7)
    _assert_partition(split, len(labels))
    rate = labels.mean()
    for part in (split.train, split.validation, split.test):
        assert abs(labels[part].mean() - rate) < 0.01
    assert len(split.test) == 1_000
    assert len(split.validation) == 1_000
    assert split.folds == ()
    assert split.test_start is None


def test_stratified_is_deterministic_per_seed(labels: np.ndarray) -> None:
    spec = SplitSpec()
    first, again = make_split(labels, spec, seed=3), make_split(labels, spec, seed=3)
    other = make_split(labels, spec, seed=4)
    np.testing.assert_array_equal(first.test, again.test)
    np.testing.assert_array_equal(first.validation, again.validation)
    assert not np.array_equal(first.test, other.test)


def test_string_labels_work(labels: np.ndarray) -> None:
    words = np.where(labels, "yes", "no").astype(object)
    split = make_split(words, SplitSpec(), seed=0)
    assert abs((words[split.test] == "yes").mean() - labels.mean()) < 0.01


@pytest.mark.parametrize("gap", [None, "0s", "1h", "7d", "30d", "90d"])
def test_time_split_never_leaks_across_the_gap(
    labels: np.ndarray, times: pd.Series, gap: str | None
) -> None:
    spec = SplitSpec(method="time", test_size=0.2, validation_size=0.2, gap=gap)
    split = make_split(labels, spec, times=times)
    assert split.test_start is not None
    assert split.train_end is not None
    cutoff = split.test_start - spec.gap_delta()
    seen = np.concatenate([split.train, split.validation])
    assert times.iloc[seen].max() < cutoff
    assert split.train_end == times.iloc[seen].max()
    assert (times.iloc[split.test] >= split.test_start).all()
    assert times.iloc[split.test].min() == split.test_start
    # Validation is later than training, so selection mimics the future.
    assert times.iloc[split.train].max() < times.iloc[split.validation].min()
    # Exactly the rows inside the gap are dropped.
    in_gap = int(((times >= cutoff) & (times < split.test_start)).sum())
    _assert_partition(split, len(labels), dropped=in_gap)
    assert len(split.test) >= 1_000


def test_time_split_test_is_the_latest_fifth(labels: np.ndarray, times: pd.Series) -> None:
    split = make_split(labels, SplitSpec(method="time", test_size=0.2), times=times)
    assert times.quantile(0.8) <= split.test_start <= times.quantile(0.81)
    assert set(split.test) == set(np.flatnonzero(times >= split.test_start))


def test_time_split_accepts_text_and_timezones(labels: np.ndarray, times: pd.Series) -> None:
    spec = SplitSpec(method="time", gap="2d")
    plain = make_split(labels, spec, times=times)
    text = make_split(labels, spec, times=times.dt.strftime("%Y-%m-%d %H:%M:%S"))
    paris = times.dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    aware = make_split(labels, spec, times=paris)
    np.testing.assert_array_equal(plain.test, text.test)
    np.testing.assert_array_equal(plain.train, aware.train)
    assert aware.test_start == plain.test_start.tz_localize("UTC")
    assert str(aware.test_start.tz) == "Europe/Paris"


def test_time_split_ignores_the_series_index(labels: np.ndarray, times: pd.Series) -> None:
    spec = SplitSpec(method="time")
    shuffled_index = times.set_axis(np.arange(len(times))[::-1])
    np.testing.assert_array_equal(
        make_split(labels, spec, times=times).test,
        make_split(labels, spec, times=shuffled_index).test,
    )


def test_time_split_needs_times(labels: np.ndarray) -> None:
    with pytest.raises(DataError, match=r"data\.time"):
        make_split(labels, SplitSpec(method="time"))


def test_time_split_rejects_missing_times(labels: np.ndarray, times: pd.Series) -> None:
    broken = times.copy()
    broken.iloc[[3, 10]] = pd.NaT
    with pytest.raises(DataError, match=r"time column 'at' has 2 missing"):
        make_split(labels, SplitSpec(method="time"), times=broken)


def test_time_split_rejects_wrong_length(labels: np.ndarray, times: pd.Series) -> None:
    with pytest.raises(DataError, match="4999 values"):
        make_split(labels, SplitSpec(method="time"), times=times.iloc[1:])


def test_gap_swallowing_all_training_rows_is_explained(
    labels: np.ndarray, times: pd.Series
) -> None:
    with pytest.raises(DataError, match=r"train set of the split is empty.*split.gap"):
        make_split(labels, SplitSpec(method="time", gap="400d"), times=times)


def test_single_class_test_window_is_explained(times: pd.Series) -> None:
    late = (times >= times.quantile(0.75)).to_numpy()
    labels = np.where(late, False, np.arange(len(times)) % 3 == 0)
    with pytest.raises(DataError, match=r"test set of the split has a single class"):
        make_split(labels, SplitSpec(method="time", test_size=0.2), times=times)


def test_cv_folds_are_disjoint_and_cover_training_rows(labels: np.ndarray) -> None:
    split = make_split(labels, SplitSpec(method="cv", folds=4), seed=1)
    assert len(split.validation) == 0
    assert len(split.folds) == 4
    _assert_partition(split, len(labels))
    assert abs(labels[split.test].mean() - labels.mean()) < 0.01
    held = np.concatenate([val for _, val in split.folds])
    assert len(held) == len(np.unique(held))
    np.testing.assert_array_equal(np.sort(held), split.train)
    for fit, val in split.folds:
        assert not set(fit) & set(val)
        np.testing.assert_array_equal(np.sort(np.concatenate([fit, val])), split.train)
        assert abs(labels[val].mean() - labels[split.train].mean()) < 0.01
    again = make_split(labels, SplitSpec(method="cv", folds=4), seed=1)
    for (fit, val), (fit2, val2) in zip(split.folds, again.folds, strict=True):
        np.testing.assert_array_equal(fit, fit2)
        np.testing.assert_array_equal(val, val2)


def test_cv_with_too_few_positives_for_the_folds() -> None:
    labels = np.array([True] * 4 + [False] * 200)
    with pytest.raises(DataError, match=r"class True has only 3 row\(s\).*split.folds=5"):
        make_split(labels, SplitSpec(method="cv", folds=5))


def test_single_class_target_is_explained() -> None:
    with pytest.raises(DataError, match="single class"):
        make_split(np.zeros(100, dtype=bool), SplitSpec())


def test_missing_labels_are_explained() -> None:
    labels = np.array([0.0, 1.0, np.nan] * 20)
    with pytest.raises(DataError, match=r"the target has 20 missing value"):
        make_split(labels, SplitSpec())


def test_tiny_minority_for_stratification_is_explained() -> None:
    labels = np.array([1] + [0] * 50)
    with pytest.raises(DataError, match="stratified test set"):
        make_split(labels, SplitSpec())

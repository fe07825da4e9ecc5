"""Business value: the value of decisions under a tp/fp/tn/fn matrix, its interval, and
the ``max_value`` threshold, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from mlprod.errors import SpecError
from mlprod.evaluation import business_value, choose_threshold, value_of_counts

MATRIX = {"tp": 90.0, "fp": -10.0, "tn": 0.0, "fn": -30.0}


def _by_hand(y: np.ndarray, s: np.ndarray, threshold: float) -> float:
    flagged = s >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    return 90.0 * tp - 10.0 * fp - 30.0 * fn


def _scored(rng: np.random.Generator, n: int = 800) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(n) < 0.2).astype(int)
    s = np.clip(0.35 * y + rng.normal(0.3, 0.15, n), 0.001, 0.999).round(3)  # with ties
    return y, s


def test_value_equals_the_hand_computation_with_an_interval_around_it(
    rng: np.random.Generator,
) -> None:
    y, s = _scored(rng)
    found = business_value(y, s, 0.5, MATRIX, seed=7)
    expected = _by_hand(y, s, 0.5)
    assert found["value"].value == pytest.approx(expected)
    assert found["value"].low < expected < found["value"].high
    assert found["value_per_row"].value == pytest.approx(expected / len(y))
    assert found["value_per_row"].low == pytest.approx(found["value"].low / len(y))
    again = business_value(y, s, 0.5, MATRIX, seed=7)
    assert again == found  # seeded: the same interval every time


def test_max_value_threshold_beats_every_other_threshold(rng: np.random.Generator) -> None:
    y, s = _scored(rng)
    chosen = choose_threshold(y, s, "max_value", matrix=MATRIX)
    assert chosen in set(s.tolist())
    best = _by_hand(y, s, chosen)
    for candidate in np.unique(s):
        assert _by_hand(y, s, candidate) <= best
    f1 = choose_threshold(y, s, "max_f1")
    assert _by_hand(y, s, f1) <= best


def test_a_costly_false_positive_raises_the_threshold(rng: np.random.Generator) -> None:
    y, s = _scored(rng)
    cheap = choose_threshold(y, s, "max_value", matrix={"tp": 10, "fp": -1})
    dear = choose_threshold(y, s, "max_value", matrix={"tp": 10, "fp": -50})
    assert dear > cheap


def test_max_value_without_a_matrix_says_what_to_add() -> None:
    with pytest.raises(SpecError, match=r"needs a value: matrix.*tp: 90"):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), "max_value")


def test_value_of_counts_sums_count_times_worth() -> None:
    counts = {"tp": 3, "fp": 5, "tn": 90, "fn": 2}
    assert value_of_counts(counts, MATRIX) == 3 * 90 - 5 * 10 - 2 * 30
    assert value_of_counts({}, MATRIX) == 0.0

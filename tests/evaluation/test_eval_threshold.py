"""choose_threshold(): each policy on a worked example, against brute force, and errors."""

from __future__ import annotations

import numpy as np
import pytest

from mlprod.errors import SpecError, TrainingError
from mlprod.evaluation import choose_threshold

# Worked by hand: at 0.4 -> P 4/5, R 1, F1 .889; at 0.5 -> P .75, R .75;
# at 0.6 -> P 1, R .75, F1 .857; at 0.7 -> P 1, R .5.
Y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])


def precision_recall_at(y: np.ndarray, s: np.ndarray, t: float) -> tuple[float, float]:
    predicted = s >= t
    tp = int(np.sum(predicted & (y == 1)))
    return (tp / int(predicted.sum()) if predicted.any() else 0.0), tp / int(y.sum())


@pytest.mark.parametrize(
    ("policy", "value", "expected"),
    [
        ("max_f1", None, 0.4),
        ("min_precision", 0.9, 0.6),
        ("min_precision", 0.8, 0.4),  # exactly 4/5 at 0.4: the boundary counts
        ("min_precision", 0.75, 0.4),
        ("min_recall", 0.75, 0.6),
        ("min_recall", 1.0, 0.4),
        ("min_recall", 0.5, 0.7),
    ],
)
def test_worked_example(policy: str, value: float | None, expected: float) -> None:
    threshold = choose_threshold(Y, S, policy, value)  # type: ignore[arg-type]
    assert threshold == expected
    precision, recall = precision_recall_at(Y, S, threshold)
    if policy == "min_precision":
        assert value is not None
        assert precision >= value
    if policy == "min_recall":
        assert value is not None
        assert recall >= value


def brute_force(y: np.ndarray, s: np.ndarray, policy: str, value: float) -> float:
    table = [(t, *precision_recall_at(y, s, t)) for t in np.unique(s)]
    if policy == "max_f1":
        return max(table, key=lambda r: (2 * r[1] * r[2] / (r[1] + r[2]), -r[0]))[0]
    if policy == "min_precision":
        return max((r for r in table if r[1] >= value), key=lambda r: (r[2], r[0]))[0]
    return max(r[0] for r in table if r[2] >= value)


@pytest.mark.parametrize(
    ("policy", "value"),
    [("max_f1", 0.0), ("min_precision", 0.6), ("min_precision", 0.8), ("min_recall", 0.9)],
)
def test_matches_brute_force(rng: np.random.Generator, policy: str, value: float) -> None:
    y = (rng.random(600) < 0.3).astype(int)
    s = np.round(1 / (1 + np.exp(-(1.5 * y + rng.normal(size=600) - 1))), 3)  # with ties
    got = choose_threshold(y, s, policy, value)  # type: ignore[arg-type]
    assert got in set(s.tolist())
    assert got == brute_force(y, s, policy, value)


def test_impossible_precision_names_the_best() -> None:
    y = np.array([1, 0, 1, 0])
    s = np.array([0.1, 0.9, 0.5, 0.3])  # the top score is a negative: best precision 0.5
    with pytest.raises(TrainingError, match=r"min_precision with value 0\.9.*precision is 0\.5"):
        choose_threshold(y, s, "min_precision", 0.9)


def test_impossible_recall_names_the_best() -> None:
    with pytest.raises(TrainingError, match=r"min_recall with value 1\.5.*recall is 1"):
        choose_threshold(Y, S, "min_recall", 1.5)


def test_constrained_policy_needs_a_value() -> None:
    with pytest.raises(SpecError, match="needs a value"):
        choose_threshold(Y, S, "min_recall")


def test_unknown_policy() -> None:
    with pytest.raises(SpecError, match="max_f1, min_precision, min_recall"):
        choose_threshold(Y, S, "youden")  # type: ignore[arg-type]


def test_no_positives() -> None:
    with pytest.raises(TrainingError, match="at least one positive"):
        choose_threshold(np.zeros(4, dtype=int), S[:4], "max_f1")


def test_non_finite_scores() -> None:
    with pytest.raises(TrainingError, match="1 non-finite"):
        choose_threshold(Y, np.where(S == 0.5, np.nan, S), "max_f1")

"""Test-set metrics with bootstrap intervals, computed in one vectorised pass.

A resample is a row of counts (how often each row was drawn), so every metric is a
weighted sum over rows sorted once by score: no re-sorting and no sklearn call per
resample. The point value is the same formula with every count set to one, which is why
it matches sklearn to rounding error (the tests check this).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from mlprod.errors import TrainingError

METRIC_NAMES = (
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
    "precision",
    "recall",
    "f1",
)
# One seed and enough resamples for every caller that checks gates (training, `mlprod
# gates`, the pytest plugin): the same test set then gets the same interval everywhere, so
# a lower-bound gate cannot pass in CI and fail at promotion. 1,000 resamples keep the
# percentile ends' own Monte Carlo wobble a few times smaller than 200 did.
BOOTSTRAP_RESAMPLES = 1_000
BOOTSTRAP_SEED = 0
_CELLS_PER_BATCH = 250_000  # resamples x rows per batch: 2 MB arrays stay in cache
_EPS = float(np.finfo(np.float64).eps)  # sklearn's log_loss clips to this


class MetricValue(BaseModel):
    """A metric on the test set with its bootstrap 95% percentile interval."""

    model_config = ConfigDict(frozen=True)

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class _Rows:
    """Per-row quantities, sorted by descending score, shared by every resample."""

    positive: np.ndarray  # 1.0 for the positive class
    predicted: np.ndarray  # 1.0 where score >= threshold
    log_loss: np.ndarray
    brier: np.ndarray
    starts: np.ndarray  # index of the first row of each distinct score


def check_binary_inputs(y_true: object, scores: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate 0/1 labels and finite probabilities of matching length; return them as arrays."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise TrainingError(
            f"{what} needs one score per label: got {y.size} labels and {s.size} scores; "
            "pass predict_proba(X)[:, 1] for the same rows as y_true"
        )
    bad = int(np.count_nonzero(~np.isfinite(s)))
    if bad:
        raise TrainingError(
            f"{what} got {bad} non-finite score(s) (NaN or inf) out of {s.size}; "
            "the model produced invalid probabilities, check its inputs for NaN or overflow"
        )
    if not np.isin(y, (0, 1)).all():
        found = np.unique(y)[:5].tolist()
        raise TrainingError(
            f"{what} needs labels encoded as 0/1, got values such as {found}; "
            "encode the positive class as 1"
        )
    return y.astype(np.int64), s


def check_evaluable(y: np.ndarray, s: np.ndarray) -> None:
    """Evaluation needs probabilities and both classes, or AUC and AP are undefined."""
    if s.size and (s.min() < 0.0 or s.max() > 1.0):
        raise TrainingError(
            f"evaluation needs probabilities in [0, 1], got scores from {s.min():g} to "
            f"{s.max():g}; pass predict_proba(X)[:, 1], not decision_function(X)"
        )
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        raise TrainingError(
            f"evaluation needs both classes in y_true, got {positives} positive(s) out of "
            f"{y.size} rows; use a larger or stratified test split"
        )


def _prepare(y: np.ndarray, s: np.ndarray, threshold: float) -> _Rows:
    order = np.argsort(-s, kind="mergesort")
    y_sorted = y[order].astype(np.float64)
    s_sorted = s[order]
    p = np.clip(s_sorted, _EPS, 1 - _EPS)
    q = np.clip(1 - s_sorted, _EPS, 1 - _EPS)
    new_value = np.empty(s_sorted.size, dtype=bool)
    new_value[:1] = True
    new_value[1:] = s_sorted[1:] != s_sorted[:-1]
    return _Rows(
        positive=y_sorted,
        predicted=(s_sorted >= threshold).astype(np.float64),
        log_loss=np.where(y_sorted == 1, -np.log(p), -np.log(q)),
        brier=(y_sorted - s_sorted) ** 2,
        starts=np.flatnonzero(new_value),
    )


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    """num / den, with `empty` where den is 0 (no warning raised)."""
    out = np.full(np.shape(num), empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _ranking(rows: _Rows, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC (Mann-Whitney with ties as 1/2) and average precision per count row."""
    pos_g = w * rows.positive
    neg_g = w - pos_g
    if rows.starts.size < w.shape[1]:  # tied scores: sum each tie into one group
        pos_g = np.add.reduceat(pos_g, rows.starts, axis=1)
        neg_g = np.add.reduceat(neg_g, rows.starts, axis=1)
    pos, neg = pos_g.sum(axis=1), neg_g.sum(axis=1)
    cum_pos, cum_neg = np.cumsum(pos_g, axis=1), np.cumsum(neg_g, axis=1)
    # Each positive beats the negatives scored lower (after it in descending order).
    beaten = neg[:, None] - cum_neg + 0.5 * neg_g
    auc = _ratio((pos_g * beaten).sum(axis=1), pos * neg, np.nan)
    precision_at = _ratio(cum_pos, cum_pos + cum_neg, 0.0)
    ap = _ratio((pos_g * precision_at).sum(axis=1), pos, np.nan)
    one_class = (pos == 0) | (neg == 0)
    auc[one_class] = np.nan
    ap[one_class] = np.nan
    return auc, ap


def _metrics(rows: _Rows, w: np.ndarray) -> dict[str, np.ndarray]:
    """All seven metrics for each row of counts `w` (resamples x rows, in sorted order)."""
    n = w.sum(axis=1)
    tp = w @ (rows.positive * rows.predicted)
    predicted = w @ rows.predicted
    actual = w @ rows.positive
    auc, ap = _ranking(rows, w)
    return {
        "roc_auc": auc,
        "average_precision": ap,
        "log_loss": (w @ rows.log_loss) / n,
        "brier": (w @ rows.brier) / n,
        "precision": _ratio(tp, predicted, 0.0),
        "recall": _ratio(tp, actual, 0.0),
        "f1": _ratio(2 * tp, predicted + actual, 0.0),
    }


def _bootstrap_counts(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Resample counts in batches, so memory stays bounded however many rows there are."""
    rng = np.random.default_rng(seed)
    batch = max(1, _CELLS_PER_BATCH // n)
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def _interval(values: np.ndarray) -> tuple[float, float]:
    valid = values[~np.isnan(values)]
    if valid.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(valid, [2.5, 97.5])
    return float(low), float(high)


def evaluate(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, MetricValue]:
    """Score a binary classifier on held-out data, each metric with a 95% bootstrap interval.

    `scores` are P(positive); precision, recall and f1 count a row as positive when its
    score is >= `threshold`. Intervals are percentile intervals over `n_boot` resamples
    drawn with a generator seeded by `seed`, so a run is reproducible. Keep the defaults
    wherever a gate is checked: training, ``mlprod gates`` and the pytest plugin all do, so
    a gate's verdict on a version is the same wherever it is checked. Resamples holding
    one class are skipped for roc_auc and average_precision. Point values equal sklearn's
    (precision/recall/f1 with ``zero_division=0``).

    >>> import numpy as np
    >>> m = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), 0.5)
    >>> m["roc_auc"].value, m["precision"].value
    (0.75, 0.5)
    """
    if n_boot < 1:
        raise TrainingError(
            f"n_boot must be at least 1, got {n_boot}; the default is {BOOTSTRAP_RESAMPLES}"
        )
    y, s = check_binary_inputs(y_true, scores, "evaluation")
    check_evaluable(y, s)
    rows = _prepare(y, s, float(threshold))
    points = _metrics(rows, np.ones((1, y.size)))
    batches = [_metrics(rows, counts) for counts in _bootstrap_counts(y.size, n_boot, seed)]
    result: dict[str, MetricValue] = {}
    for name in METRIC_NAMES:
        low, high = _interval(np.concatenate([b[name] for b in batches]))
        result[name] = MetricValue(value=float(points[name][0]), low=low, high=high)
    return result

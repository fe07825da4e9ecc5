"""Test-set metrics with bootstrap intervals, computed in one vectorised pass.

A resample is a row of counts (how often each row was drawn), so every metric is a
weighted sum over rows sorted once by score: no re-sorting and no sklearn call per
resample. The point value is the same formula with every count set to one, which is why
it matches sklearn to rounding error (the tests check this).

`evaluate` lays each resample's counts out as negatives then positives: a running count
of the negatives, read at fixed positions, gives every positive the negatives ranked
above it, so no resample re-sorts, sums tied groups or divides at a negative row. The
draws are `_bootstrap_counts`' (same generator, same order) and the counts stay integers,
so AUC, precision, recall and f1 equal the row-count formulas' exactly; average
precision, log loss and Brier score add in another order (equal to about 1e-15).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

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
PAIRED_METRICS = ("roc_auc", "average_precision", "log_loss")  # need no threshold
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
    score: np.ndarray
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
        score=s_sorted,
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


def _draws(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The rows each resample draws (resamples x n), in batches that bound the memory.

    The generator's stream does not depend on the batch size or the integer width (both
    draw 32-bit values below 2**32), so any batching gives the same resamples.
    """
    rng = np.random.default_rng(seed)
    dtype = np.int32 if n <= np.iinfo(np.int32).max else np.int64  # half the bytes to write
    batch = max(1, _CELLS_PER_BATCH // n)
    for start in range(0, n_boot, batch):
        yield rng.integers(0, n, size=(min(batch, n_boot - start), n), dtype=dtype)


def _bootstrap_counts(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Resample counts in batches, so memory stays bounded however many rows there are."""
    for draws in _draws(n, n_boot, seed):
        size = len(draws)
        cells = draws + (np.arange(size) * n)[:, None]
        yield np.bincount(cells.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


@dataclass(frozen=True)
class _ByClass:
    """The sorted rows as negatives then positives, each still by descending score.

    A resample's metrics need only how often it drew each row and, for each positive,
    how many negatives score at or above it: fixed positions into the negatives' running
    count, found once here.
    """

    column: np.ndarray  # each sorted row's column: negatives first, then positives
    negatives: int
    at_or_above: np.ndarray  # per positive: negatives scored >= it
    above: np.ndarray | None  # per positive: negatives scored > it (None: no ties)
    tied_through: np.ndarray | None  # per positive: the last positive tied with it
    predicted: tuple[int, int]  # negatives, positives scored >= threshold (prefixes)
    losses: np.ndarray  # (rows, 2) per column: log loss and squared error


def _by_class(rows: _Rows) -> _ByClass:
    positive = rows.positive.astype(bool)
    order = np.concatenate([np.flatnonzero(~positive), np.flatnonzero(positive)])
    column = np.empty(order.size, dtype=np.intp)
    column[order] = np.arange(order.size)
    down_neg, down_pos = -rows.score[~positive], -rows.score[positive]  # ascending
    at_or_above = np.searchsorted(down_neg, down_pos, side="right")
    above = np.searchsorted(down_neg, down_pos, side="left")
    tied_through = np.searchsorted(down_pos, down_pos, side="right") - 1
    untied = np.array_equal(at_or_above, above) and np.array_equal(
        tied_through, np.arange(down_pos.size)
    )
    return _ByClass(
        column=column,
        negatives=int(down_neg.size),
        at_or_above=at_or_above,
        above=None if untied else above,
        tied_through=None if untied else tied_through,
        predicted=(int(rows.predicted[~positive].sum()), int(rows.predicted[positive].sum())),
        losses=np.column_stack([rows.log_loss[order], rows.brier[order]]),
    )


def _class_counts(rows: _ByClass, draws: np.ndarray) -> np.ndarray:
    """How often each resample (a row of `draws`) drew each column of `rows`."""
    size, n = draws.shape
    cells = rows.column[draws]
    cells += (np.arange(size) * n)[:, None]
    return np.bincount(cells.ravel(), minlength=size * n).reshape(size, n)


def _resampled(rows: _ByClass, counts: np.ndarray) -> dict[str, np.ndarray]:
    """All seven metrics per resample, from `_class_counts`: `_metrics`' formulas on
    running counts. The counts stay integers, so AUC, precision, recall and f1 are
    exact; average precision, log loss and Brier score sum in another order."""
    size, n = counts.shape
    negatives = np.zeros((size, rows.negatives + 1), dtype=counts.dtype)  # 0, then running
    np.cumsum(counts[:, : rows.negatives], axis=1, out=negatives[:, 1:])
    drawn = counts[:, rows.negatives :]  # each positive's count
    positives = np.cumsum(drawn, axis=1)
    neg, pos = negatives[:, -1], positives[:, -1]
    at_or_above = negatives[:, rows.at_or_above]
    if rows.above is None or rows.tied_through is None:
        beaten_twice = 2 * (neg[:, None] - at_or_above)
        through = positives
    else:  # a tie counts half, and precision at a score counts every row tied at it
        beaten_twice = 2 * neg[:, None] - at_or_above - negatives[:, rows.above]
        through = positives[:, rows.tied_through]
    auc = _ratio((drawn * beaten_twice).sum(axis=1) / 2, pos * neg, np.nan)
    precision_at = _ratio(through, through + at_or_above, 0.0)
    ap = _ratio((drawn * precision_at).sum(axis=1), pos, np.nan)
    one_class = (pos == 0) | (neg == 0)
    auc[one_class] = np.nan
    ap[one_class] = np.nan
    k_neg, k_pos = rows.predicted
    tp = positives[:, k_pos - 1] if k_pos else np.zeros_like(pos)
    predicted = tp + negatives[:, k_neg]
    sums = counts.astype(np.float64) @ rows.losses
    return {
        "roc_auc": auc,
        "average_precision": ap,
        "log_loss": sums[:, 0] / n,
        "brier": sums[:, 1] / n,
        "precision": _ratio(tp, predicted, 0.0),
        "recall": _ratio(tp, pos, 0.0),
        "f1": _ratio(2 * tp, predicted + pos, 0.0),
    }


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
    by_class = _by_class(rows)
    batches = [
        _resampled(by_class, _class_counts(by_class, draws))
        for draws in _draws(y.size, n_boot, seed)
    ]
    result: dict[str, MetricValue] = {}
    for name in METRIC_NAMES:
        low, high = _interval(np.concatenate([b[name] for b in batches]))
        result[name] = MetricValue(value=float(points[name][0]), low=low, high=high)
    return result


def paired_bootstrap(
    y_true: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    metric: str,
    *,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """`metric` of `second` minus that of `first`, on each bootstrap resample of the rows.

    Both sets of scores meet the same resamples (a paired bootstrap: the gap's spread is
    the rows', not two test sets'). Resamples holding one class are left out, for every
    metric. `metric` is one of `PAIRED_METRICS` (the others need a threshold). Resamples
    are drawn in batches, so memory stays bounded however many rows.

    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 0, 1])
    >>> gaps = paired_bootstrap(y, np.array([.1, .6, .4, .9, .2, .7]),
    ...                         np.array([.1, .2, .8, .9, .3, .7]), "roc_auc", n_boot=50)
    >>> bool((gaps >= 0).all()), len(gaps) <= 50
    (True, True)
    """
    if metric not in PAIRED_METRICS:
        raise TrainingError(
            f"a paired bootstrap compares {', '.join(PAIRED_METRICS)}, not {metric!r}"
        )
    y, a = check_binary_inputs(y_true, first, "a paired comparison")
    _, b = check_binary_inputs(y_true, second, "a paired comparison")
    rows_a, rows_b = _by_row(y, a), _by_row(y, b)
    gaps = []
    for draws in _draws(y.size, n_boot, seed):
        one = _resampled(rows_a, _class_counts(rows_a, draws))
        two = _resampled(rows_b, _class_counts(rows_b, draws))
        both = ~np.isnan(one["roc_auc"])  # NaN exactly where a resample holds one class
        gaps.append((two[metric] - one[metric])[both])
    return np.concatenate(gaps)


def _by_row(y: np.ndarray, s: np.ndarray) -> _ByClass:
    """`_by_class` with its columns indexed by the rows' original positions, so that draws
    of row positions pick the same rows for any scores (resampling sorted rows, as
    `evaluate` does, only works for one set of scores)."""
    rows = _by_class(_prepare(y, s, 0.5))
    order = np.argsort(-s, kind="mergesort")  # the order _prepare sorts rows into
    return replace(rows, column=rows.column[np.argsort(order)])

"""The statistics of the decision: a paired comparison, and a sequential test for canaries.

Paired: champion and challenger score the same labelled rows; the difference in the
metric is resampled row by row (bootstrap, the same resamples for both), so the interval
reflects the rows both saw, not two separate test sets. The difference is oriented so that
positive means the challenger is better (for log loss, champion minus challenger).
Multiclass versions (n x k probabilities) compare on roc_auc (macro one-vs-rest), log_loss
or macro_f1 (the most probable class as the label), resampled as the test metrics are.

Sequential: a canary is looked at again and again as outcomes arrive. Look k spends
``alpha / 2**k`` of the error budget, so however many looks there are, the chance of a
wrong promotion or rollback stays under ``alpha``. Looks are spaced geometrically (a new
look needs half again as many labels), so the budget is not spent on noise.

Example::

    paired_comparison(y, champion_scores, challenger_scores, "roc_auc", seed=0)
    canary_look(champion_losses, challenger_losses, look=2, alpha=0.05, margin=0.005)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from mlprod.errors import DataError
from mlprod.evaluation import PAIRED_METRICS, compare_multiclass_metrics, paired_bootstrap

RESAMPLES = 1000
BINARY_COMPARED = PAIRED_METRICS
MULTICLASS_COMPARED = ("roc_auc", "log_loss", "macro_f1")
Verdict = Literal["promote", "roll_back", "continue"]


@dataclass(frozen=True)
class Comparison:
    """The two versions' metric on the same rows and the difference's 95% interval."""

    metric: str
    champion: float
    challenger: float
    difference: float  # positive: the challenger is better
    low: float
    high: float
    rows: int


def paired_comparison(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    metric: str,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> Comparison:
    """Both versions' `metric` on the rows `y`, and the paired bootstrap interval of the gap.

    Binary: `y` is 0/1 and the scores P(positive). Multiclass: `y` holds positions 0..k-1
    and the scores are n x k probabilities in that order.
    """
    y = np.asarray(y, dtype=int)
    if np.ndim(champion) == 2:
        return _paired_multiclass(y, champion, challenger, metric, seed=seed, resamples=resamples)
    if len(y) < 20 or len(np.unique(y)) < 2:
        raise DataError(
            f"cannot compare champion and challenger on {len(y)} labelled rows with "
            f"{len(np.unique(y))} class(es): need at least 20 rows with both classes"
        )
    score = _scorer(metric)
    sign = -1.0 if metric == "log_loss" else 1.0
    base = (score(y, champion), score(y, challenger))
    if metric == "log_loss":  # as `score` sees them
        champion, challenger = (np.clip(s, 1e-15, 1 - 1e-15) for s in (champion, challenger))
    gaps = paired_bootstrap(y, champion, challenger, metric, n_boot=resamples, seed=seed)
    low, high = np.percentile(sign * gaps, [2.5, 97.5])
    return Comparison(
        metric, base[0], base[1], sign * (base[1] - base[0]), float(low), float(high), len(y)
    )


def _paired_multiclass(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    metric: str,
    *,
    seed: int,
    resamples: int,
) -> Comparison:
    """The multiclass comparison: the same resamples for both, as `mlprod runs compare`."""
    if metric not in MULTICLASS_COMPARED:
        raise DataError(
            f"cannot compare multiclass versions on {metric!r}: use "
            f"{', '.join(MULTICLASS_COMPARED)}"
        )
    k = np.shape(champion)[1]
    present = len(np.unique(y))
    if len(y) < 20 or present < k:
        raise DataError(
            f"cannot compare champion and challenger on {len(y)} labelled rows with "
            f"{present} of their {k} classes: need at least 20 rows with every class"
        )
    rows = compare_multiclass_metrics(
        (y, champion), (y, challenger), list(range(k)), paired=True, n_boot=resamples, seed=seed
    )
    found = next(row for row in rows if row["metric"] == metric)
    a, b, delta, low, high = (cast(float, found[key]) for key in ("a", "b", "delta", "low", "high"))
    sign = -1.0 if metric == "log_loss" else 1.0  # b - a, turned so positive is better
    low, high = sorted((sign * low, sign * high))
    return Comparison(metric, a, b, sign * delta, low, high, len(y))


def _scorer(metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    if metric == "roc_auc":
        return lambda y, s: float(roc_auc_score(y, s))
    if metric == "average_precision":
        return lambda y, s: float(average_precision_score(y, s))
    if metric == "log_loss":
        return lambda y, s: float(log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1]))
    raise DataError(f"cannot compare on {metric!r}: use roc_auc, average_precision or log_loss")


@dataclass(frozen=True)
class Look:
    """One look at a canary: the excess Brier score of the challenger and its bounds."""

    verdict: Verdict
    excess: float  # challenger minus champion mean Brier score: positive is worse
    low: float
    high: float
    level: float  # the confidence this look used
    champion_rows: int
    challenger_rows: int


def canary_look(
    champion_losses: np.ndarray,
    challenger_losses: np.ndarray,
    *,
    look: int,
    alpha: float,
    margin: float,
) -> Look:
    """Promote once the challenger is surely not worse by more than `margin`; roll back
    once it surely is; continue otherwise. Look `look` (from 1) uses level ``alpha/2**look``.
    """
    a, b = np.asarray(champion_losses, float), np.asarray(challenger_losses, float)
    spent = alpha / 2**look
    z = float(norm.ppf(1 - spent / 2))
    excess = float(b.mean() - a.mean())
    spread = z * math.sqrt(b.var(ddof=1) / len(b) + a.var(ddof=1) / len(a))
    low, high = excess - spread, excess + spread
    verdict: Verdict = "continue"
    if high < margin:
        verdict = "promote"
    elif low > margin:
        verdict = "roll_back"
    return Look(verdict, excess, low, high, 1 - spent, len(a), len(b))


def brier_losses(scores: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Per-prediction Brier loss, ``(score - label)**2``: a proper score, additive by row."""
    losses: np.ndarray = (np.asarray(scores, float) - np.asarray(labels, float)) ** 2
    return losses

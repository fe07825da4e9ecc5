"""Two runs side by side: metric differences with bootstrap intervals.

When both runs were tested on the same rows the interval is paired (each resample draws
the same rows for both models), which is far tighter than comparing two separate
intervals; otherwise the two test sets are resampled independently. Binary runs compare
the binary metrics at each run's threshold; multiclass runs the multiclass ones, with
every class's precision and recall side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlprod.evaluation._metrics import (
    METRIC_NAMES,
    _bootstrap_counts,
    _interval,
    _metrics,
    _prepare,
    check_binary_inputs,
)
from mlprod.evaluation._multiclass import (
    MULTICLASS_METRIC_NAMES,
    check_multiclass_inputs,
    class_key,
)
from mlprod.evaluation._multiclass import _metrics as _class_metrics

_LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
Figures = tuple[dict[str, float], dict[str, np.ndarray]]  # point values, resampled values


def _point_and_boot(
    y: np.ndarray, s: np.ndarray, threshold: float, counts: list[np.ndarray]
) -> Figures:
    order = np.argsort(-s, kind="mergesort")  # the order _prepare sorts rows into
    rows = _prepare(y, s, threshold)
    point = {k: float(v[0]) for k, v in _metrics(rows, np.ones((1, y.size))).items()}
    batches = [_metrics(rows, c[:, order]) for c in counts]
    boot = {name: np.concatenate([b[name] for b in batches]) for name in METRIC_NAMES}
    return point, boot


def _class_point_and_boot(
    y: np.ndarray, p: np.ndarray, labels: Sequence[str], counts: list[np.ndarray]
) -> Figures:
    point = {k: float(v[0]) for k, v in _class_metrics(y, p, labels, np.ones((1, y.size))).items()}
    batches = [_class_metrics(y, p, labels, c) for c in counts]
    boot = {name: np.concatenate([b[name] for b in batches]) for name in point}
    return point, boot


def _counts(n_a: int, n_b: int, *, paired: bool, n_boot: int, seed: int) -> tuple[list[Any], ...]:
    """Resample counts for a and b: the same draws when paired, independent ones otherwise."""
    counts_a = list(_bootstrap_counts(n_a, n_boot, seed))
    counts_b = counts_a if paired else list(_bootstrap_counts(n_b, n_boot, seed + 1))
    return counts_a, counts_b


def _rows(names: Sequence[str], a: Figures, b: Figures, paired: bool) -> list[dict[str, object]]:
    """One row per metric: both values, b - a with its interval, and which is better."""
    (point_a, boot_a), (point_b, boot_b) = a, b
    rows: list[dict[str, object]] = []
    for name in names:
        delta = point_b[name] - point_a[name]
        low, high = _interval(boot_b[name] - boot_a[name])
        sign = -1 if name in _LOWER_IS_BETTER else 1
        if low > 0 or high < 0:
            better = "b" if sign * delta > 0 else "a"
        else:
            better = "no clear difference"
        rows.append(
            {"metric": name, "a": point_a[name], "b": point_b[name], "delta": delta,
             "low": low, "high": high, "better": better, "paired": paired}
        )  # fmt: skip
    return rows


def compare_metrics(
    a: tuple[np.ndarray, np.ndarray, float],
    b: tuple[np.ndarray, np.ndarray, float],
    *,
    paired: bool,
    n_boot: int = 200,
    seed: int = 0,
) -> list[dict[str, object]]:
    """Per metric: a's and b's values, b - a with a 95% interval, and which is better.

    `a` and `b` are (0/1 labels, scores, threshold). `paired` needs the same rows in the
    same order in both.

    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 0, 1])
    >>> rows = compare_metrics((y, np.array([.1, .6, .4, .9, .2, .7]), .5),
    ...                        (y, np.array([.1, .2, .8, .9, .3, .7]), .5), paired=True)
    >>> rows[0]["metric"], round(rows[0]["delta"], 3)
    ('roc_auc', 0.111)
    """
    ya, sa = check_binary_inputs(a[0], a[1], "comparison")
    yb, sb = check_binary_inputs(b[0], b[1], "comparison")
    counts_a, counts_b = _counts(ya.size, yb.size, paired=paired, n_boot=n_boot, seed=seed)
    figures_a = _point_and_boot(ya, sa, float(a[2]), counts_a)
    figures_b = _point_and_boot(yb, sb, float(b[2]), counts_b)
    return _rows(METRIC_NAMES, figures_a, figures_b, paired)


def compare_multiclass_metrics(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    classes: Sequence[Any],
    *,
    paired: bool,
    n_boot: int = 200,
    seed: int = 0,
) -> list[dict[str, object]]:
    """`compare_metrics` for two multiclass models over the same `classes`.

    `a` and `b` are (labels coded 0..k-1, n x k probabilities in `classes` order). Rows:
    accuracy, macro_f1, weighted_f1, roc_auc (macro one-vs-rest), log_loss, then
    ``precision[CLASS]`` and ``recall[CLASS]`` class by class; point values equal
    `evaluate_multiclass`'s (and scikit-learn's) on the same rows.

    >>> import numpy as np
    >>> y = np.array([0, 1, 2, 1, 0, 2])
    >>> weak = np.full((6, 3), 1 / 3)
    >>> sharp = np.eye(3)[y] * 0.8 + 0.2 / 3
    >>> rows = compare_multiclass_metrics((y, weak), (y, sharp), ["a", "b", "c"], paired=True)
    >>> [(r["metric"], round(r["delta"], 3)) for r in rows][3:5]
    [('roc_auc', 0.5), ('log_loss', -0.956)]
    """
    ya, pa = check_multiclass_inputs(a[0], a[1], classes, "comparison")
    yb, pb = check_multiclass_inputs(b[0], b[1], classes, "comparison")
    labels = [str(c) for c in classes]
    counts_a, counts_b = _counts(ya.size, yb.size, paired=paired, n_boot=n_boot, seed=seed)
    figures_a = _class_point_and_boot(ya, pa, labels, counts_a)
    figures_b = _class_point_and_boot(yb, pb, labels, counts_b)
    names = [*MULTICLASS_METRIC_NAMES]
    for label in labels:
        names += [class_key("precision", label), class_key("recall", label)]
    return _rows(names, figures_a, figures_b, paired)

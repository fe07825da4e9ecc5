"""Two runs side by side: metric differences with bootstrap intervals.

When both runs were tested on the same rows the interval is paired (each resample draws
the same rows for both models), which is far tighter than comparing two separate
intervals; otherwise the two test sets are resampled independently.
"""

from __future__ import annotations

import numpy as np

from mlprod.evaluation._metrics import (
    METRIC_NAMES,
    _bootstrap_counts,
    _interval,
    _metrics,
    _prepare,
    check_binary_inputs,
)

_LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


def _point_and_boot(
    y: np.ndarray, s: np.ndarray, threshold: float, counts: list[np.ndarray]
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    order = np.argsort(-s, kind="mergesort")  # the order _prepare sorts rows into
    rows = _prepare(y, s, threshold)
    point = {k: float(v[0]) for k, v in _metrics(rows, np.ones((1, y.size))).items()}
    batches = [_metrics(rows, c[:, order]) for c in counts]
    boot = {name: np.concatenate([b[name] for b in batches]) for name in METRIC_NAMES}
    return point, boot


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
    counts_a = list(_bootstrap_counts(ya.size, n_boot, seed))
    counts_b = counts_a if paired else list(_bootstrap_counts(yb.size, n_boot, seed + 1))
    point_a, boot_a = _point_and_boot(ya, sa, float(a[2]), counts_a)
    point_b, boot_b = _point_and_boot(yb, sb, float(b[2]), counts_b)
    rows: list[dict[str, object]] = []
    for name in METRIC_NAMES:
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

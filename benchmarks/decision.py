"""A retrain decision's statistics: the paired bootstrap of champion against challenger.

Every retrain compares the two versions on the same labelled rows: the metric's gap and
its 95% interval over 1,000 paired resamples (`mlprod.scheduling.paired_comparison`).
This times it beside the baseline it replaced, in the same process, interleaved:

- **scikit-learn loop**: each resample's rows materialised and scored by scikit-learn's
  metric function, for both versions (what the decision did before);
- **mlprod**: `paired_comparison`, the gaps from resample counts.

Both must give the same interval (printed: the largest difference of its ends).

Run::

    python benchmarks/decision.py                 # 800, 5,000 and 20,000 rows, 3 passes
    python benchmarks/decision.py --rows 2000 --passes 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

RESAMPLES = 1000


def sklearn_loop(y: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """The 95% interval of b - a, each resample scored by scikit-learn (the baseline)."""
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    scorers = {
        "roc_auc": roc_auc_score,
        "average_precision": average_precision_score,
        "log_loss": lambda yr, s: -log_loss(yr, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1]),
    }
    score = scorers[metric]
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(y), len(y))
        if len(np.unique(y[rows])) < 2:
            continue
        gaps.append(score(y[rows], b[rows]) - score(y[rows], a[rows]))
    return np.percentile(gaps, [2.5, 97.5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[800, 5_000, 20_000])
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()

    from mlprod.scheduling import paired_comparison

    rng = np.random.default_rng(1)
    print(f"{'rows':>7} {'metric':<18} {'sklearn loop s':>14} {'mlprod s':>9} {'speed-up':>9}"
          f" {'interval diff':>14}")  # fmt: skip
    for n in args.rows:
        y = (rng.random(n) < 0.3).astype(int)
        noise = rng.normal(size=n)
        champion = 1 / (1 + np.exp(-(1.0 * (y - 0.5) + noise)))
        challenger = 1 / (1 + np.exp(-(1.5 * (y - 0.5) + noise)))
        for metric in ("roc_auc", "average_precision", "log_loss"):
            loop_s, ours_s, diff = [], [], 0.0
            for _ in range(args.passes):
                started = time.perf_counter()
                expected = sklearn_loop(y, champion, challenger, metric)
                loop_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                got = paired_comparison(y, champion, challenger, metric, seed=0)
                ours_s.append(time.perf_counter() - started)
                diff = max(diff, abs(got.low - expected[0]), abs(got.high - expected[1]))
            loop, ours = statistics.median(loop_s), statistics.median(ours_s)
            print(f"{n:>7,} {metric:<18} {loop:>14.3f} {ours:>9.4f} {loop / ours:>8.0f}x"
                  f" {diff:>14.1e}")  # fmt: skip


if __name__ == "__main__":
    main()

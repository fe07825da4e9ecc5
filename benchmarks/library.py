"""Library benchmark: `mlprod.load(...).predict_proba` beside plain scikit-learn/LightGBM.

One command::

    .venv/bin/python benchmarks/library.py               # about a minute
    .venv/bin/python benchmarks/library.py --rows 5000   # a quicker model

It trains the quickstart's churn model (LightGBM only) into a temporary store and times,
per record, in interleaved passes (medians of `--passes`):

- the loaded model's predict_proba on 1 and 100 records, as a DataFrame and as a list of
  dicts, and `predict_record` on one dict;
- the same model without the fast path (``mlprod.load(..., fast=False)``: the full
  pipeline, what the library did before);
- plain scikit-learn: the fitted transformer and the fitted LGBMClassifier's own
  predict_proba on the same DataFrame (what a team would write by hand);
- the server's fast path (``score_records``) per row, the figure the library aims for.

Goals: one record under 100 µs and at least 20x faster than plain scikit-learn; 100 records
within 2x of the server's fast path per row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def per_row_us(call: Callable[[], object], rows: int, budget: float) -> float:
    """Microseconds per row of `call`, timed over about `budget` seconds (best of 3)."""
    call()
    number = max(1, int(budget / 3 / max(timeit.timeit(call, number=1), 1e-7)))
    return min(timeit.repeat(call, number=number, repeat=3)) / number / rows * 1e6


def lgbm_classifier(model_file: Path) -> Any:
    """A fitted LGBMClassifier holding the bundle's own trees: its predict_proba is the
    plain scikit-learn API a hand-written service calls (checks included)."""
    import lightgbm
    from sklearn.preprocessing import LabelEncoder

    booster = lightgbm.Booster(model_file=str(model_file))
    classifier = lightgbm.LGBMClassifier()
    classifier._Booster, classifier.fitted_ = booster, True
    classifier._n_features = classifier._n_features_in = booster.num_feature()
    classifier._n_classes, classifier._objective = 2, "binary"
    classifier._le = LabelEncoder().fit([0, 1])
    classifier._classes = classifier._le.classes_
    return classifier


def timings(store: str, records: list[dict[str, Any]]) -> dict[str, Callable[[], object]]:
    import pandas as pd

    import mlprod
    from mlprod.serving import LoadedVersion

    model = mlprod.load("churn@production", store=store)
    full = mlprod.load("churn@production", store=store, fast=False)
    print(f"model: {model!r}, path {model.path}, engine {model.engine}")
    if model.fast_check is not None:
        print(f"  {model.fast_check.reason}")
        if model.fast_check.fast is not None:
            print(f"  {model.fast_check.fast.frames_verified}")
    classifier = lgbm_classifier(Path(model.scorer.model_file))
    transformer = model.transformer
    served = LoadedVersion.prepare(mlprod.load("churn@production", store=store, fast=False))
    one, hundred = records[:1], records[:100]
    frame1, frame100 = pd.DataFrame(one), pd.DataFrame(hundred)

    def sklearn(frame: pd.DataFrame) -> object:
        return classifier.predict_proba(transformer.transform(frame))

    frame, _ = model.test_data()
    check = sklearn(frame).__getitem__((slice(None), 1)) - model.score(frame)
    print(f"  scikit-learn agrees with the library to {abs(check).max():.1e}")

    return {
        "library, DataFrame, 1": lambda: model.predict_proba(frame1),
        "library, list of dicts, 1": lambda: model.predict_proba(one),
        "library, predict_record": lambda: model.predict_record(one[0]),
        "library, DataFrame, 100": lambda: model.predict_proba(frame100),
        "library, list of dicts, 100": lambda: model.predict_proba(hundred),
        "before (full pipeline), DataFrame, 1": lambda: full.predict_proba(frame1),
        "before (full pipeline), DataFrame, 100": lambda: full.predict_proba(frame100),
        "scikit-learn + LightGBM, DataFrame, 1": lambda: sklearn(frame1),
        "scikit-learn + LightGBM, DataFrame, 100": lambda: sklearn(frame100),
        "server fast path, 1": lambda: served.score_records(one, max_records=100),
        "server fast path, 100": lambda: served.score_records(hundred, max_records=100),
    }


def main(argv: list[str] | None = None) -> int:
    from serve import client_rows, train_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--passes", type=int, default=5, help="interleaved passes")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per timing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        print(f"training the quickstart model (LightGBM, {args.rows:,} rows) ...")
        store = train_model(Path(folder), args.rows)
        calls = timings(store, client_rows(100))
        found: dict[str, list[float]] = {label: [] for label in calls}
        for _ in range(args.passes):
            for label, call in calls.items():
                rows = 100 if label.endswith("100") else 1
                found[label].append(per_row_us(call, rows, args.budget))
    median = {label: statistics.median(values) for label, values in found.items()}
    print(f"\nper record, median of {args.passes} interleaved passes (µs)")
    for label, value in median.items():
        print(f"  {label:<42} {value:9.1f}")
    print("\nratios")
    for size in ("1", "100"):
        sk = median[f"scikit-learn + LightGBM, DataFrame, {size}"]
        before = median[f"before (full pipeline), DataFrame, {size}"]
        server = median[f"server fast path, {size}"]
        for kind in ("DataFrame", "list of dicts"):
            ours = median[f"library, {kind}, {size}"]
            print(
                f"  {kind}, {size:>3}: {sk / ours:5.1f}x faster than scikit-learn, "
                f"{before / ours:6.1f}x than before, {ours / server:4.2f}x the server's fast path"
            )
    print("goals: 1 record < 100 µs and >= 20x scikit-learn; 100 records <= 2x the server's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

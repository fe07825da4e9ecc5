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

``--before SRC`` (a checkout's ``src`` folder) times the library and server rows of that
tree too, in a second process that takes turns with this one (each pass times every row
here, then the same row there), so both see the same machine; ``--clock cpu`` (the default)
counts process CPU time, steadier than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
COMPARED = ("library, ", "server fast path, ")  # the rows `--before` times in both trees


def per_row_us(call: Callable[[], object], rows: int, budget: float, clock: str = "wall") -> float:
    """Microseconds per row of `call`, timed over about `budget` seconds (best of 3)."""
    timer = CLOCKS[clock]
    call()
    number = max(1, int(budget / 3 / max(timeit.timeit(call, number=1), 1e-7)))
    return min(timeit.repeat(call, number=number, repeat=3, timer=timer)) / number / rows * 1e6


def rows_of(label: str) -> int:
    return 100 if label.endswith("100") else 1


def worker(store: str, budget: float, clock: str) -> int:
    """The `--before` side: time the compared rows when asked, one label per line."""
    from serve import client_rows

    calls = {k: v for k, v in timings(store, client_rows(100)).items() if k.startswith(COMPARED)}
    print("ready", flush=True)
    for line in sys.stdin:
        label = line.strip()
        print(per_row_us(calls[label], rows_of(label), budget, clock), flush=True)
    return 0


class Before:
    """The baseline tree in a second process, timing one row whenever asked."""

    def __init__(self, src: str, store: str, budget: float, clock: str) -> None:
        command = [sys.executable, __file__, "--worker", store, "--budget", str(budget)]
        env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
        self.process = subprocess.Popen(
            [*command, "--clock", clock], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        if self.process.stdin is None or self.process.stdout is None:
            raise RuntimeError("the --before process has no pipes")
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        while (line := self.stdout.readline()) and line.strip() != "ready":
            print(f"  before: {line.rstrip()}")
        if not line:
            raise RuntimeError("the --before process ended before it was ready")

    def time(self, label: str) -> float:
        self.stdin.write(label + "\n")
        self.stdin.flush()
        return float(self.stdout.readline())

    def close(self) -> None:
        self.stdin.close()
        self.process.wait(timeout=60)


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
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="what to count")
    parser.add_argument("--before", metavar="SRC", help="a baseline tree's src folder")
    parser.add_argument("--worker", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.budget, args.clock)
    with tempfile.TemporaryDirectory() as folder:
        print(f"training the quickstart model (LightGBM, {args.rows:,} rows) ...")
        store = train_model(Path(folder), args.rows)
        calls = timings(store, client_rows(100))
        before = (
            None if args.before is None else Before(args.before, store, args.budget, args.clock)
        )
        found: dict[str, list[float]] = {label: [] for label in calls}
        old: dict[str, list[float]] = {label: [] for label in calls if label.startswith(COMPARED)}
        for _ in range(args.passes):
            for label, call in calls.items():
                found[label].append(per_row_us(call, rows_of(label), args.budget, args.clock))
                if before is not None and label in old:
                    old[label].append(before.time(label))
        if before is not None:
            before.close()
    median = {label: statistics.median(values) for label, values in found.items()}
    print(f"\nper record, median of {args.passes} interleaved passes (µs, {args.clock} time)")
    for label, value in median.items():
        was = f"   before {statistics.median(old[label]):9.1f}" if old.get(label) else ""
        change = f"  ({statistics.median(old[label]) / value:4.2f}x)" if was else ""
        print(f"  {label:<42} {value:9.1f}{was}{change}")
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

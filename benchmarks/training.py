"""What `mlprod train` costs beyond the fit: one LightGBM candidate against a plain fit.

The same 200k-row synthetic churn table (Parquet) and the same 200-tree LightGBM, each
variant in a fresh process, passes interleaved:

- **plain**: read the Parquet file, encode the categories, fit on the training rows,
  predict validation and test rows. The floor a hand-written notebook pays.
- **mlprod**: `mlprod.train(spec)` with that one candidate: split, features, fit,
  learning curve, threshold, metrics with intervals, charts, report, registration.
- with ``--compare-to SRC``: the same mlprod run from another source tree (a checkout of
  an earlier commit), in the same passes, for before/after ratios.

Run::

    python benchmarks/training.py                      # 200k rows, 3 passes
    python benchmarks/training.py --rows 50000 --passes 1
    python benchmarks/training.py --compare-to ../older-checkout/src

Figures: wall and CPU seconds per variant (median of passes) and mlprod's ratio to plain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TREES = 200

PLAIN = """
import time
imported = time.perf_counter()
import json, resource, sys
import lightgbm, numpy as np, pandas as pd
started = time.perf_counter()
df = pd.read_parquet(sys.argv[1])
y = df.pop("churned").to_numpy(dtype=int)
X = df.drop(columns=["customer_id", "event_time", "signup_date"])
for column in X.columns:
    if not (pd.api.types.is_numeric_dtype(X[column]) or pd.api.types.is_bool_dtype(X[column])):
        X[column] = X[column].astype("category")
rng = np.random.default_rng(0)
order = rng.permutation(len(X))
test, val, train = np.split(order, [len(X) // 5, len(X) // 5 + len(X) // 10])
model = lightgbm.LGBMClassifier(n_estimators=TREES, verbose=-1, random_state=0)
model.fit(X.iloc[train], y[train])
model.predict_proba(X.iloc[val]); model.predict_proba(X.iloc[test])
usage = resource.getrusage(resource.RUSAGE_SELF)
now = time.perf_counter()
print(json.dumps({"wall": now - started, "imports": started - imported,
                  "cpu": usage.ru_utime + usage.ru_stime}))
""".replace("TREES", str(TREES))

MLPROD = """
import json, resource, sys, time
started = time.perf_counter()
import mlprod
mlprod.train(sys.argv[1], store=sys.argv[2])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - started, "cpu": usage.ru_utime + usage.ru_stime}))
"""

SPEC = """\
name: churn
data:
  source: {source}
  target: churned
  positive: true
  time: event_time
  entity: customer_id
features:
  exclude: [signup_date]
split:
  method: stratified
  test_size: 0.2
candidates:
  - {{type: lightgbm, params: {{n_estimators: {trees}}}}}
threshold:
  policy: max_f1
"""


def run(code: str, args: list[str], src: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"variant failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def write_project(folder: Path, rows: int) -> tuple[Path, Path]:
    """The synthetic churn table (Parquet) and its one-candidate spec, written in `folder`."""
    from mlprod.data import make_churn_table

    data = folder / "churn.parquet"
    make_churn_table(rows, seed=1).to_parquet(data)
    spec = folder / "mlprod.yaml"
    spec.write_text(SPEC.format(source=data, trees=TREES))
    return data, spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--compare-to", help="another source tree (its src folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, spec = write_project(folder, args.rows)
        here = str(Path(__file__).resolve().parents[1] / "src")
        variants = {"plain": (PLAIN, None), "mlprod": (MLPROD, here)}
        if args.compare_to:
            variants["mlprod (compare-to)"] = (MLPROD, args.compare_to)
        figures: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for turn in range(args.passes):
            for name, (code, src) in variants.items():
                store = folder / f"store-{turn}-{len(figures[name])}-{name[:6]}"
                extra = [] if code is PLAIN else [str(store)]
                figures[name].append(run(code, [str(data if code is PLAIN else spec), *extra], src))
                print(f"pass {turn + 1} {name}: {figures[name][-1]['wall']:.1f} s", flush=True)

    plain = statistics.median(f["wall"] for f in figures["plain"])
    imports = statistics.median(f["imports"] for f in figures["plain"])
    print(
        textwrap.dedent(f"""
        {args.rows:,} rows, LightGBM {TREES} trees, median of {args.passes} interleaved passes
        (mlprod's time includes its imports; plain's first ratio does not, the second does:
        its imports of lightgbm, scikit-learn and pandas took {imports:.1f} s)
        variant                 wall s   cpu s   wall / plain   / plain + imports""")
    )
    for name, runs in figures.items():
        wall = statistics.median(f["wall"] for f in runs)
        cpu = statistics.median(f["cpu"] for f in runs)
        print(
            f"{name:<22} {wall:7.1f} {cpu:7.1f}   {wall / plain:5.2f}x"
            f"          {wall / (plain + imports):5.2f}x"
        )


if __name__ == "__main__":
    main()

"""What loading a version costs: `mlprod.load` with its fast-path check, beside reading alone.

Every server start, batch job and `mlprod.load` checks a version's fast path before it
serves: the test set (up to 100k rows) and probe records go through both paths and must
agree to 1e-9. This times that, each variant in a fresh process, passes interleaved:

- **read only**: ``mlprod.load(ref, fast=False)``: the bundle's files read and the model
  unpickled, nothing checked. The floor every load pays.
- **load**: ``mlprod.load(ref)``, the fast path compiled and checked, as a server does.
- with ``--before SRC``: the same load from another source tree (a checkout of an
  earlier commit), in the same passes, for before/after ratios.

The model is the benchmark's usual one: 200-tree LightGBM on the synthetic churn table,
whose test split is a fifth of ``--rows``.

Run::

    python benchmarks/load.py                       # 200k rows (40k test rows), 3 passes
    python benchmarks/load.py --before ../older/src
    python benchmarks/load.py --rows 50000 --passes 1

Figures: wall seconds of the load call (median of passes; after ``import mlprod``, so the
libraries a load imports count), and what the check adds over reading alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
from pathlib import Path

from training import TREES, run, write_project

LOAD = """
import json, sys, time
import mlprod
started = time.perf_counter()
model = mlprod.load(sys.argv[1], store=sys.argv[2], fast=sys.argv[3] == "fast")
print(json.dumps({"wall": time.perf_counter() - started, "fast": float(model.path == "fast")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--before", help="another source tree (its src folder)")
    args = parser.parse_args()

    import mlprod

    here = str(Path(__file__).resolve().parents[1] / "src")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _, spec = write_project(folder, args.rows)
        store = str(folder / "store")
        print(f"training {args.rows:,} rows ...", flush=True)
        version = mlprod.train(str(spec), store=store).version
        ref = f"churn@{version}"
        variants = {"read only": ("reference", here), "load": ("fast", here)}
        if args.before:
            variants["load (before)"] = ("fast", args.before)
        walls: dict[str, list[float]] = {name: [] for name in variants}
        for turn in range(args.passes):
            for name, (mode, src) in variants.items():
                figures = run(LOAD, [ref, store, mode], src)
                walls[name].append(figures["wall"])
                path = "fast path" if figures["fast"] else "full pipeline"
                print(f"pass {turn + 1} {name}: {walls[name][-1]:.2f} s ({path})")

    floor = statistics.median(walls["read only"])
    print(
        textwrap.dedent(f"""
        {args.rows:,} rows ({args.rows // 5:,} test rows), LightGBM {TREES} trees,
        median of {args.passes} interleaved passes, each after `import mlprod`
        variant              wall s   check s (over read only)""")
    )
    for name, values in walls.items():
        wall = statistics.median(values)
        print(f"{name:<20} {wall:6.2f}   {wall - floor:6.2f}")


if __name__ == "__main__":
    main()

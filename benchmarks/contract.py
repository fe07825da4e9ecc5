"""What the request contract costs on the predict path: this tree beside another, same run.

One command::

    .venv/bin/python benchmarks/contract.py --base ../other-checkout/src   # about 3 minutes

It trains the quickstart's churn model (LightGBM only) twice into a temporary store: once
as is, once with the `interface:` section `mlprod init` drafts (every field bounded). Then
worker processes, one per (source tree, model), take turns for several passes: each loads
the version as a server does (`LoadedVersion.prepare`) and times, per row, what a request
costs before it is answered: scoring 1 and 100 records (validation included) plus, where
the tree has it, dropping fields outside the contract before logging. The table shows the
median over passes and each tree's ratio to the base; the machine's noise shows as the
spread between passes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

WORKER = r"""
import json, sys, timeit
import mlprod
from mlprod.serving import LoadedVersion
from mlprod.serving._scoring import score_records
try:
    from mlprod.records._validate import without_extras
except ImportError:
    without_extras = None
store, ref, rows_path = sys.argv[1:4]
records = json.loads(open(rows_path).read())
loaded = LoadedVersion.prepare(mlprod.load(ref, store=store))
kept = loaded.contract.kept if without_extras else None

def request(batch):
    score_records(loaded, batch, 10_000)
    if without_extras is not None:
        without_extras(batch, kept)

out = {"path": loaded.path}
for size in (1, 100):
    batch = records[:size]
    request(batch)
    number = max(1, int(0.3 / max(timeit.timeit(lambda: request(batch), number=1), 1e-7)))
    best = min(timeit.repeat(lambda: request(batch), number=number, repeat=5)) / number
    out[str(size)] = best / size * 1e6
print(json.dumps(out))
"""


def train_both(folder: Path, rows: int) -> str:
    """churn@1 as the quickstart trains it, churn@2 with the drafted interface."""
    from serve import train_model

    from mlprod.data import load_frame
    from mlprod.features import draft_interface, infer_kinds
    from mlprod.pipelines import train
    from mlprod.spec import load_spec, render_spec

    store = train_model(folder, rows)
    spec = load_spec(folder / "mlprod.yaml")
    frame = load_frame(folder / "customers.csv")
    kinds = {name: str(kind) for name, kind in spec.features.declared().items()}
    kinds = kinds or dict(infer_kinds(frame, {spec.data.target}))
    drafted = render_spec("x", "x.csv", "x", {}, interface=draft_interface(
        frame, kinds, target=spec.data.target))  # fmt: skip
    section = drafted[drafted.index("interface:") :]
    text = (folder / "mlprod.yaml").read_text(encoding="utf-8") + "\n" + section
    (folder / "mlprod.yaml").write_text(text, encoding="utf-8")
    train(folder / "mlprod.yaml", store=store)
    return store


def _median(timings: dict[tuple[str, str], list[dict[str, float]]], tree: str, ref: str,
            size: str) -> float:  # fmt: skip
    return statistics.median(t[size] for t in timings[(tree, ref)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the other tree's src folder")
    parser.add_argument("--passes", type=int, default=5, help="turns each worker takes (5)")
    parser.add_argument("--rows", type=int, default=5_000, help="training rows (5,000)")
    args = parser.parse_args(argv)
    trees = {"base": str(Path(args.base).resolve()), "this": str(SRC)}
    with tempfile.TemporaryDirectory(prefix="mlprod-contract-") as tmp:
        folder = Path(tmp)
        print(f"training churn@1 (no interface) and churn@2 (drafted interface) in {folder}")
        store = train_both(folder, args.rows)
        from serve import client_rows

        rows_path = folder / "rows.json"
        rows_path.write_text(json.dumps(client_rows(200)), encoding="utf-8")
        runs = [(tree, ref) for ref in ("churn@1", "churn@2") for tree in trees]
        timings: dict[tuple[str, str], list[dict[str, float]]] = {run: [] for run in runs}
        for turn in range(args.passes):
            print(f"pass {turn + 1} of {args.passes} ...")
            for tree, ref in runs:
                env = {**os.environ, "PYTHONPATH": trees[tree]}
                done = subprocess.run(
                    [sys.executable, "-c", WORKER, store, ref, str(rows_path)],
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                timings[(tree, ref)].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print()
    print(f"{'model':<30} {'tree':<5} {'1 record us/row':>16} {'100 records us/row':>19}  ratio")
    for tree, ref in runs:
        cells = []
        for size in ("1", "100"):
            values = [t[size] for t in timings[(tree, ref)]]
            cells.append(f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})")
        ratios = [_median(timings, tree, ref, s) / _median(timings, "base", ref, s)
                  for s in ("1", "100")]  # fmt: skip
        ratio = " / ".join(f"{r:.2f}" for r in ratios)
        name = f"{ref} ({'interface' if ref.endswith('2') else 'no interface'})"
        path = timings[(tree, ref)][0]["path"]
        print(f"{name:<30} {tree:<5} {cells[0]:>16} {cells[1]:>19}  {ratio}  [{path} path]")
    print(f"median of {args.passes} interleaved passes (min-max); ratio: this tree / base")
    return 0


if __name__ == "__main__":
    sys.exit(main())

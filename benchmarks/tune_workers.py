"""`mlprod tune --workers 2` on one machine: wall time beside another source tree's.

The processes of a tuning run share the machine's cores. This measures what that costs
end to end: the same project (the churn generator, LightGBM and HistGradientBoosting
candidates, a few trials of 3-fold CV each) tuned by this tree and by `--before SRC` (a
checkout of an earlier commit), each in a fresh store, the variants taking turns in every
pass. Results differ a little between runs, as two workers share a study in no fixed
order; the figure is the time.

Run::

    git worktree add ../mlprod-before <commit>
    python benchmarks/tune_workers.py --before ../mlprod-before/src   # about 10 minutes
    python benchmarks/tune_workers.py --rows 5000 --trials 3 --passes 1

The environment's `OMP_WAIT_POLICY` is removed for every run, so each tree makes its own
choice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SPEC = """\
name: churn
data: {{source: customers.csv, target: churned, positive: true, time: event_time}}
features:
  numeric: [tenure_months, monthly_charges, total_charges, support_calls, last_login_days]
  categorical: [plan, region, payment_method]
  boolean: [has_partner, paperless_billing]
split: {{method: time, test_size: 0.2, gap: 3d}}
candidates: [lightgbm, hist_gbm]
tuning: {{trials: {trials}, folds: 3}}
"""


def tune(project: Path, src: str, workers: int) -> float:
    """Wall seconds of one `mlprod tune` run by the tree in `src`, in a fresh store."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory(dir=project) as store:
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "mlprod", "tune", "--workers", str(workers),
             "--store", store, "--json"],
            cwd=project, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"tune failed ({src}):\n{out.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="another source tree (its src folder)")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()

    from mlprod.data import make_churn_table

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        make_churn_table(args.rows, seed=3).to_csv(project / "customers.csv", index=False)
        (project / "mlprod.yaml").write_text(SPEC.format(trials=args.trials))
        trees = {"before": args.before, "this tree": str(HERE.parent / "src")}
        times: dict[str, list[float]] = {name: [] for name in trees}
        for turn in range(args.passes):
            for name, src in trees.items():
                times[name].append(tune(project, src, args.workers))
                print(f"pass {turn + 1} {name}: {times[name][-1]:.1f} s", flush=True)

    before = statistics.median(times["before"])
    print(
        f"\nmlprod tune --workers {args.workers}, {args.rows:,} rows, {args.trials} trials per "
        f"candidate, median of {args.passes} interleaved passes"
    )
    for name, runs in times.items():
        wall = statistics.median(runs)
        print(f"{name:<10} {wall:7.1f} s   {before / wall:5.2f}x the before tree's speed")


if __name__ == "__main__":
    main()

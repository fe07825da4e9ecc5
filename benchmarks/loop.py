"""Closed-loop benchmark: how fast the loop reacts, and what the scheduler itself costs.

One command::

    .venv/bin/python benchmarks/loop.py            # about 3 minutes
    .venv/bin/python benchmarks/loop.py --models 50 --hours 1

1. The scenario of `tests/scheduling/test_loop.py`: a model serving live traffic (a real
   `mlprod serve`, a real SQLite store) whose concept changes at a known point. The
   scheduler runs over simulated time (10 simulated minutes a tick). Printed: simulated
   time from the change to the promoted challenger, ticks, real seconds, and the labelled
   outcomes the retrain and the canary needed.
2. The scheduler's own CPU cost per simulated hour at the default 30 s tick, with 1 and
   with `--models` models scheduled (each with a weekly retrain on alerts and new data
   and a daily monitor, none of them due within the hour: the cost of deciding, not of
   the jobs); one model is the baseline the many are read against.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the scenario is shared with the tests

SCHEDULED = """\
name: {name}
data: {{source: {source}, target: converted, time: event_time, entity: account_id}}
features: {{numeric: [a, b, c, d], categorical: [segment]}}
candidates: [logistic_regression]
schedule:
  jobs:
    retrain: {{cron: "0 3 * * 1", triggers: [drift, performance, new_data]}}
    monitor: {{cron: "0 4 * * *"}}
"""


def scenario(folder: Path) -> None:
    from loop_scenario import MODEL, Traffic, change_regime, drive, write_loop_project
    from mlprod._time import ManualClock, utc_now
    from mlprod.pipelines import promote, train
    from mlprod.registry import alias_map
    from mlprod.scheduling import LoopContext, Project, Scheduler, list_decisions
    from mlprod.settings import Settings
    from mlprod.store import Store, open_artifacts
    from support import Server

    now = pd.Timestamp.now(tz="UTC").floor("s")
    project = write_loop_project(folder / "loop", now=now)
    run = train(project.spec, store=project.store)
    promote(MODEL, run.version, "production", store=project.store, actor="bench")
    server = Server(project, env={"MLPROD_MONITOR_FLUSH": "0.5"})
    server.wait_ready()
    settings = Settings(store=project.store)
    store = Store.from_settings(settings)
    clock = ManualClock(utc_now())
    context = LoopContext(store, open_artifacts(settings), settings, clock=clock)
    change_regime(project, now=now)
    changed, began = clock.now(), time.monotonic()
    traffic = Traffic.of_regime(server.url, regime=1)
    traffic.start()
    scheduler = Scheduler([Project.load(project.spec)], context, workers=0)
    try:
        ticks = drive(
            scheduler, clock, lambda: alias_map(store, MODEL).get("production") == 2, timeout=600
        )
    finally:
        traffic.stop()
        server.stop()
    decisions = sorted(list_decisions(store, MODEL), key=lambda d: d.id)
    retrained, canary = decisions[0], decisions[-1]
    print("\nthe loop, concept change at a known point (live traffic, real server)")
    print(
        f"  decisions                      {', '.join(f'{d.kind}: {d.outcome}' for d in decisions)}"
    )
    print(f"  simulated time to promotion    {clock.now() - changed} ({ticks} ticks of 10 min)")
    print(f"  real time                      {time.monotonic() - began:.0f} s")
    print(
        f"  retrain compared on            {retrained.rows} {retrained.basis} rows, "
        f"{retrained.metric} {retrained.champion_value:.3f} -> {retrained.challenger_value:.3f}"
    )
    labels = canary.details.get("labels", {})
    print(
        f"  labelled outcomes the canary needed: {labels.get('challenger')} (challenger), "
        f"{labels.get('champion')} (champion), {canary.details.get('looks')} look(s)"
    )
    print(f"  requests answered / failed     {traffic.answered:,} / {len(traffic.failures)}")
    store.close()


def scheduler_cost(folder: Path, models: int, hours: float) -> None:
    from mlprod._time import ManualClock, utc_now
    from mlprod.data import make_regime_table
    from mlprod.scheduling import LoopContext, Project, Scheduler
    from mlprod.settings import Settings
    from mlprod.store import Store, open_artifacts

    source = folder / "accounts.csv"
    make_regime_table(2000, 1, start="2026-01-01", end="2026-03-01", regime=0).to_csv(
        source, index=False
    )
    print("\nthe scheduler's own cost per simulated hour (30 s ticks, jobs not due)")
    print(f"  {'models':>6}  {'per tick':>9}  {'CPU s / hour':>12}")
    for count in (1, models):
        root = folder / f"cost-{count}"
        root.mkdir()
        specs = []
        for i in range(count):
            spec = root / f"m{i:03d}.yaml"
            spec.write_text(SCHEDULED.format(name=f"m{i:03d}", source=source), encoding="utf-8")
            specs.append(Project.load(spec))
        settings = Settings(store=str(root / ".mlprod"))
        store = Store.from_settings(settings)
        clock = ManualClock(utc_now().replace(hour=10, minute=0))  # nothing due before 03:00
        scheduler = Scheduler(
            specs, LoopContext(store, open_artifacts(settings), settings, clock=clock), workers=0
        )
        ticks = int(hours * 120)
        scheduler.tick()  # the first look hashes each source once
        started = time.process_time()
        for _ in range(ticks):
            clock.advance(timedelta(seconds=30))
            scheduler.tick()
        cpu = time.process_time() - started
        print(f"  {count:>6}  {1000 * cpu / ticks:>7.1f} ms  {cpu / hours:>12.2f}")
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50, help="models scheduled (50)")
    parser.add_argument("--hours", type=float, default=1.0, help="simulated hours of ticks (1)")
    parser.add_argument("--skip-scenario", action="store_true", help="only the cost figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlprod-loop-") as tmp:
        if not args.skip_scenario:
            scenario(Path(tmp))
        scheduler_cost(Path(tmp), args.models, args.hours)


if __name__ == "__main__":
    main()

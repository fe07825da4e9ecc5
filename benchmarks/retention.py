"""What an unpruned prediction log costs the server's inserts, and what pruning gives back.

A SQLite store is filled with `--rows` served predictions from 100 days ago (by the fast
insert path, in 10k-row batches, random ids as a server writes them). Then, in the same
run, the flusher's insert path (`insert_entries`, 100-record entries) is timed on a fresh
20k rows three ways: into an empty store (the baseline), into the full store, and into
the same store after `prune_predictions(before=90 days ago)`. Each figure is the median of
`--passes` interleaved passes, in CPU microseconds per row (the flusher shares the
server's core, so CPU is what it takes from requests).

    .venv/bin/python benchmarks/retention.py                 # 2M rows, about 2 minutes
    .venv/bin/python benchmarks/retention.py --rows 200000   # a quick look
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from mlprod.predlog import insert_entries, prediction_entry, prune_predictions
from mlprod.registry import create_run
from mlprod.store import Store

RECORD = {"tenure_months": 3, "monthly_charges": 80.5, "plan": "basic", "region": "north",
          "has_partner": False, "signup_date": "2024-01-15"}  # fmt: skip
PER_ENTRY = 100


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def lines(rows: int, at: datetime) -> list[bytes]:
    """Server-shaped log lines: `rows` predictions in entries of 100."""
    out = []
    for _ in range(rows // PER_ENTRY):
        answers = [{"id": uuid.uuid4().hex, "version": 1, "score": 0.42, "label": False}
                   for _ in range(PER_ENTRY)]  # fmt: skip
        entry = prediction_entry("churn", [RECORD] * PER_ENTRY, answers, at=at, latency_ms=1.0)
        out.append(orjson.dumps(entry))
    return out


def insert_cost(store: Store, rows: int = 20_000) -> float:
    """CPU µs per row of the flusher's insert path, batches of 10k rows."""
    batch = lines(rows, datetime.now(UTC))
    started = cpu()
    for i in range(0, len(batch), 10_000 // PER_ENTRY):
        insert_entries(store, batch[i : i + 10_000 // PER_ENTRY])
    return (cpu() - started) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlprod-retention-") as tmp:
        stores = {
            name: Store.open(f"sqlite:///{Path(tmp) / name}.db") for name in ("empty", "full")
        }
        for store in stores.values():
            create_run(store, "churn", user="bench", spec={}, git_commit=None, library_versions={})
        old = datetime.now(UTC) - timedelta(days=100)
        started = time.perf_counter()
        for first in range(0, args.rows, 100_000):
            insert_entries(stores["full"], lines(min(100_000, args.rows - first), old))
        size = (Path(tmp) / "full.db").stat().st_size / 2**20
        seconds = time.perf_counter() - started
        print(f"filled {args.rows:,} old rows in {seconds:.0f} s ({size:,.0f} MiB)")
        figures: dict[str, list[float]] = {"empty store": [], "full store": []}
        for _ in range(args.passes):
            for name, store in stores.items():
                figures[f"{name} store"].append(insert_cost(store))
        started = time.perf_counter()
        pruned = prune_predictions(stores["full"], before=datetime.now(UTC) - timedelta(days=90))
        seconds = time.perf_counter() - started
        print(
            f"pruned {pruned.rows:,} rows in {seconds:.1f} s ({pruned.rows / seconds:,.0f} rows/s)"
        )
        figures["after prune"] = []
        for _ in range(args.passes):
            figures["after prune"].append(insert_cost(stores["full"]))
            figures["empty store"].append(insert_cost(stores["empty"]))
        base = statistics.median(figures["empty store"])
        print(f"\n{'insert_entries, CPU per row':30} {'µs':>8} {'x empty':>8}")
        for name, values in figures.items():
            value = statistics.median(values)
            print(f"{name:30} {value:8.2f} {value / base:8.2f}")
        for store in stores.values():
            store.close()


if __name__ == "__main__":
    main()

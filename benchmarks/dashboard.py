"""Dashboard benchmark: page load times with 50 models and a year of hourly windows each.

One command::

    .venv/bin/python benchmarks/dashboard.py          # about 3 minutes, 1 GB of disk
    .venv/bin/python benchmarks/dashboard.py --models 10 --days 90

It trains one small model, registers it under `--models` names, and writes a year of
hourly window statistics and feature bin counts for each (what servers would have merged),
straight into a SQLite store. Then it starts `mlprod dashboard` and times each page over
HTTP (median of 5 loads), beside the same pages for a store holding a single model: the
baseline that shows what the number of models costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson

from mlprod.bundle import read_reference
from mlprod.data import make_churn_table
from mlprod.monitoring._reference import SCORE_BINS
from mlprod.pipelines import train
from mlprod.pipelines._quickstart import SPEC
from mlprod.registry import create_run, get_run, get_version, register_version, set_alias
from mlprod.store import LocalArtifacts, Store
from mlprod.store import schema as t

PAGES = (
    "/ui/?period=24h",
    "/ui/models/m000?period=24h",
    "/ui/models/m000?period=7d",
    "/ui/models/m000?period=30d",
    "/ui/models/m000?period=1y",
)


def build_store(folder: Path, models: int, days: int) -> str:
    """A store with `models` registered models and `days` of hourly windows each."""
    folder.mkdir(parents=True, exist_ok=True)
    make_churn_table(5_000, seed=7).to_csv(folder / "customers.csv", index=False)
    (folder / "mlprod.yaml").write_text(SPEC, encoding="utf-8")
    store_dir = folder / ".mlprod"
    run = train(folder / "mlprod.yaml", store=str(store_dir))
    url = f"sqlite:///{store_dir / 'mlprod.db'}"
    with Store.open(url) as store:
        record = get_version(store, "churn", run.version)
        artifacts = LocalArtifacts(store_dir / "artifacts")
        reference = read_reference(artifacts.path(record.bundle_id))
        assert reference is not None
        for i in range(models):
            name = f"m{i:03d}"
            run_id = create_run(
                store,
                name,
                user="bench",
                spec=get_run(store, record.run_id).spec,
                git_commit=None,
                library_versions={},
            )
            register_version(
                store,
                name,
                run_id=run_id,
                bundle_id=record.bundle_id,
                flavor=record.flavor,
                metrics=record.metrics,
                gates=record.gates,
                gates_passed=True,
                signature=record.signature,
                threshold=record.threshold,
            )
            set_alias(store, name, "production", 1, actor="bench")
        _write_windows(store, [f"m{i:03d}" for i in range(models)], reference, days)
    return str(store_dir)


def _write_windows(store: Store, names: list[str], reference: dict, days: int) -> None:
    """Every window's rows at once per model: numpy draws the counts, orjson the JSON."""
    rng = np.random.default_rng(1)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    stamps = [(end - timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S.%f") for h in range(days * 24)]
    features = {**reference["features"], "__score__": reference["score"]}
    stats_sql = (
        f"INSERT INTO {t.window_stats.name} (model, version, window_start, predictions, "
        "predicted_positive, est_tp, est_positive, score_hist, labelled, tp, fp, fn, tn, "
        "pos_hist, neg_hist) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    counts_sql = (
        f"INSERT INTO {t.feature_counts.name} (model, version, feature, window_start, counts, "
        "total) VALUES (?, 1, ?, ?, ?, ?)"
    )
    for name in names:
        n = rng.integers(500, 2000, len(stamps))
        hists = rng.multinomial(n, np.full(SCORE_BINS, 1 / SCORE_BINS))  # the live bins
        labelled = n // 10
        tp, fp, fn = labelled // 5, labelled // 10, labelled // 8
        stats = [
            (
                name,
                stamp,
                int(n[i]),
                int(n[i] // 4),
                n[i] * 0.15,
                n[i] * 0.25,
                orjson.dumps(hists[i].tolist()).decode(),
                int(labelled[i]),
                int(tp[i]),
                int(fp[i]),
                int(fn[i]),
                int(labelled[i] - tp[i] - fp[i] - fn[i]),
                orjson.dumps((hists[i] // 10).tolist()).decode(),
                orjson.dumps((hists[i] // 10).tolist()).decode(),
            )
            for i, stamp in enumerate(stamps)
        ]
        counts = []
        for feature, ref in features.items():
            shares = np.asarray(ref["counts"], float) + 1
            live = rng.multinomial(n, shares / shares.sum())
            counts += [
                (name, feature, stamp, orjson.dumps(live[i].tolist()).decode(), int(n[i]))
                for i, stamp in enumerate(stamps)
            ]
        with store.engine.begin() as conn:
            conn.exec_driver_sql(stats_sql, stats)
            conn.exec_driver_sql(counts_sql, counts)


def time_pages(store: str, pages: tuple[str, ...]) -> dict[str, float]:
    port = 18_000 + os.getpid() % 1000
    env = {**os.environ, "MLPROD_STORE": store, "MLPROD_MONITOR": "false"}
    command = [sys.executable, "-m", "mlprod", "dashboard", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        results = {}
        with httpx.Client(base_url=url, timeout=60) as client:
            for page in pages:
                client.get(page).raise_for_status()  # warm caches (references, templates)
                times = []
                for _ in range(5):
                    began = time.perf_counter()
                    client.get(page).raise_for_status()
                    times.append(time.perf_counter() - began)
                results[page] = statistics.median(times)
        return results
    finally:
        process.terminate()
        process.wait(timeout=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlprod-bench-") as tmp:
        root = Path(tmp)
        print(f"writing {args.models} models x {args.days * 24:,} hourly windows ...")
        began = time.perf_counter()
        many = build_store(root / "many", args.models, args.days)
        print(f"  done in {time.perf_counter() - began:.0f} s; writing the one-model baseline ...")
        one = build_store(root / "one", 1, args.days)
        print("timing pages ...")
        baseline, measured = time_pages(one, PAGES), time_pages(many, PAGES)
    print()
    print(f"{'page':<30}{'1 model':>12}{f'{args.models} models':>14}")
    for page in PAGES:
        print(f"{page:<30}{baseline[page] * 1000:>10.0f} ms{measured[page] * 1000:>12.0f} ms")
    print()
    print(
        f"median of 5 loads over HTTP; {args.days} days of hourly windows per model, "
        "11 features + the score; SQLite store; target: pages in under a second"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
